package selfinstruct

import (
	"errors"

	"github.com/gotune/gotune/data/verify"
)

// Verifier checks a generated task; a non-nil error drops it (counted
// under ReasonVerifier). A verifier sees tasks after the heuristic filters
// and before the similarity filter.
type Verifier func(GeneratedTask) error

// KnownTasks is the Verifier of the default seed set's task families: it
// drops a task whose output verify.Task recomputes and finds wrong, and
// passes every task of a family verify.Task does not know.
func KnownTasks(t GeneratedTask) error {
	err := verify.Task(t.Instruction, t.Input, t.Output)
	if errors.Is(err, verify.ErrUnknownTask) {
		return nil
	}
	return err
}
