package selfinstruct

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gotune/gotune/data"
)

// TeacherDemonstrations are instruction rows that teach an
// instruction-following model to be a self-instruct teacher: each row's
// instruction is a generation prompt as Run writes it (EncodePrompt with
// the header, "{num_tasks}" replaced by numTasks, showing numExamples
// tasks), and its output the reply Run hopes for — tasks numExamples+1 to
// numTasks-1 in the block format ParseResponse reads, ending where Run's
// StopSequences cut a reply. The tasks of a row are
// distinct tasks drawn from pool, by an RNG that depends only on seed.
//
// A model fine-tuned on these rows and asked with the prompt as its
// instruction (LocalTeacher with a Template, or an HTTPTeacher with Chat)
// writes new tasks by sampling: it learns the format and the kind of task
// from pool, and what it writes is filtered, verified and deduplicated
// like any teacher's reply.
func TeacherDemonstrations(header string, pool []GeneratedTask, numExamples, numTasks, rows int, seed uint64) ([]data.Instruction, error) {
	switch {
	case numExamples <= 0:
		return nil, fmt.Errorf("teacher demonstrations: %d examples per prompt; want at least 1", numExamples)
	case numTasks < numExamples+2:
		return nil, fmt.Errorf("teacher demonstrations: %d tasks per prompt leave no task to write after %d examples (want at least %d)", numTasks, numExamples, numExamples+2)
	case len(pool) < numTasks-1:
		return nil, fmt.Errorf("teacher demonstrations: %d tasks in the pool; a row needs %d distinct ones", len(pool), numTasks-1)
	case rows <= 0:
		return nil, fmt.Errorf("teacher demonstrations: %d rows; want at least 1", rows)
	}
	h := strings.ReplaceAll(header, "{num_tasks}", fmt.Sprint(numTasks))
	rng := rand.New(rand.NewPCG(seed, 0x7eac4e5))
	out := make([]data.Instruction, rows)
	for r := range out {
		idx := rng.Perm(len(pool))[:numTasks-1]
		ex := make([]GeneratedTask, numExamples)
		for i := range ex {
			ex[i] = pool[idx[i]]
		}
		var reply strings.Builder
		for i, k := range idx[numExamples:] {
			n := numExamples + 1 + i
			t := pool[k]
			in := t.Input
			if in == "" {
				in = NoInput
			}
			if i > 0 {
				fmt.Fprintf(&reply, "###\n%d. Instruction:", n)
			}
			fmt.Fprintf(&reply, " %s\n%d. Input:\n%s\n%d. Output:\n%s\n", oneLine(t.Instruction), n, in, n, t.Output)
		}
		fmt.Fprintf(&reply, "###\n%d. Instruction:", numTasks)
		out[r] = data.Instruction{Instruction: EncodePrompt(h, ex), Output: reply.String()}
	}
	return out, nil
}

// oneLine is an instruction as EncodePrompt shows it: runs of white space
// made one space, trailing colons dropped.
func oneLine(s string) string {
	return strings.TrimRight(strings.TrimSpace(spaceRuns.ReplaceAllString(s, " ")), ":")
}
