package selfinstruct

import (
	"errors"
	"testing"

	"github.com/gotune/gotune/data/verify"
)

// Every default seed task is of a family KnownTasks recognises: its own
// answer passes and a wrong one fails.
func TestDefaultSeedsVerify(t *testing.T) {
	seeds := DefaultSeedTasks()
	if len(seeds) < 20 {
		t.Fatalf("%d default seeds, want at least 20", len(seeds))
	}
	names := map[string]bool{}
	for _, s := range seeds {
		if names[s.Name] {
			t.Errorf("seed name %q twice", s.Name)
		}
		names[s.Name] = true
		task := s.Task()
		if err := KnownTasks(task); err != nil {
			t.Errorf("seed %s: %v", s.Name, err)
		}
		if err := verify.Task(task.Instruction, task.Input, task.Output); errors.Is(err, verify.ErrUnknownTask) {
			t.Errorf("seed %s: family not recognised", s.Name)
		}
		wrong := task
		wrong.Output = "Yes 123456789"
		if err := KnownTasks(wrong); err == nil {
			t.Errorf("seed %s: a wrong answer passes (not recognised?)", s.Name)
		}
		if f := NewFilter(DefaultBlocklist).Check(task); f != "" {
			t.Errorf("seed %s fails the filter: %s", s.Name, f)
		}
	}
}

// KnownTasks confirms a right answer, calls unverifiable what verify.Task
// cannot judge, and refutes what it finds wrong.
func TestKnownTasksAdapter(t *testing.T) {
	const ok, unverifiable, wrong = 0, 1, 2
	for _, c := range []struct {
		task GeneratedTask
		want int
	}{
		{GeneratedTask{"Write a haiku about autumn leaves.", "", "Leaves drift and settle"}, unverifiable},
		{GeneratedTask{"Find the sum of the numbers.", "1, 2, 3.5", "6.5"}, ok},
		{GeneratedTask{"Find the sum of the numbers.", "1, 2, 3.5", "7"}, wrong},
	} {
		err := KnownTasks(c.task)
		got := ok
		if errors.Is(err, ErrUnverifiable) {
			got = unverifiable
		} else if err != nil {
			got = wrong
		}
		if got != c.want {
			t.Errorf("%+v: error %v, want outcome %d", c.task, err, c.want)
		}
	}
}
