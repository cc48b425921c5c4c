package selfinstruct

import (
	"strings"
	"testing"
)

// TestTeacherDemonstrationsRoundTrip: a demonstration's prompt is what Run
// sends, and its reply, cut at Run's stop sequences as a teacher's would
// be, parses back into exactly the tasks it was made from, each a task of
// the pool other than the prompt's examples.
func TestTeacherDemonstrationsRoundTrip(t *testing.T) {
	pool := []GeneratedTask{
		{Instruction: "What is 12 + 30?", Output: "42"},
		{Instruction: "Sort the numbers from smallest to largest.", Input: "6 2 9", Output: "2 6 9"},
		{Instruction: "Write the word in  capital letters:", Input: "cat", Output: "CAT"},
		{Instruction: "How many times does the letter a appear in the word banana?", Output: "3"},
		{Instruction: "Reverse the letters of the word.", Input: "stone", Output: "enots"},
		{Instruction: "Which number is larger: 6 or 61?", Output: "61"},
	}
	const numExamples, numTasks = 2, 6
	header := "Come up with {num_tasks} new tasks like these.\n\n"
	rows, err := TeacherDemonstrations(header, pool, numExamples, numTasks, 20, 3)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := TeacherDemonstrations(header, pool, numExamples, numTasks, 20, 3)
	seen := map[string]bool{}
	for i, r := range rows {
		if r != again[i] {
			t.Fatalf("row %d differs between two calls with the same seed", i)
		}
		seen[r.Instruction] = true
		if !strings.HasPrefix(r.Instruction, "Come up with 6 new tasks like these.\n\n") || !strings.HasSuffix(r.Instruction, "###\n3. Instruction:") {
			t.Fatalf("row %d: prompt is not Run's prompt:\n%s", i, r.Instruction)
		}
		reply := r.Output
		cut := len(reply)
		for _, s := range StopSequences(numTasks) {
			if k := strings.Index(reply, s); k >= 0 {
				cut = min(cut, k)
			}
		}
		if cut == len(reply) {
			t.Fatalf("row %d: no stop sequence ends the reply %q", i, reply)
		}
		rejected := map[string]int{}
		got := ParseResponse(numExamples, reply[:cut], false, rejected)
		if len(rejected) != 0 || len(got) != numTasks-1-numExamples {
			t.Fatalf("row %d: parsed %d tasks, rejected %v from %q", i, len(got), rejected, reply)
		}
		for _, g := range got {
			found := false
			for _, p := range pool {
				if g.Instruction == oneLine(p.Instruction) && g.Input == p.Input && g.Output == p.Output {
					found = true
				}
			}
			if !found || strings.Contains(r.Instruction, g.Instruction+"\n") {
				t.Fatalf("row %d: parsed task %+v is not a pool task absent from the prompt", i, g)
			}
		}
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct prompts in 20 rows", len(seen))
	}
	for _, c := range []struct {
		ex, n, rows int
		pool        []GeneratedTask
	}{{0, 6, 1, pool}, {2, 3, 1, pool}, {2, 6, 0, pool}, {2, 6, 1, pool[:4]}} {
		if _, err := TeacherDemonstrations(header, c.pool, c.ex, c.n, c.rows, 1); err == nil {
			t.Errorf("examples %d, tasks %d, rows %d, pool %d: no error", c.ex, c.n, c.rows, len(c.pool))
		}
	}
}
