package selfinstruct

import (
	"errors"
	"fmt"

	"github.com/gotune/gotune/data/verify"
)

// Verifier checks a generated task after the heuristic filters and before
// the similarity filter: nil confirms it (the task counts in
// Report.Verified), an error wrapping ErrUnverifiable says the verifier
// cannot tell (the task is kept unless Config.RequireVerified, and counts
// in Report.Unverified), and any other error drops it under
// ReasonVerifier.
type Verifier func(GeneratedTask) error

// ErrUnverifiable is what a Verifier wraps for a task it has no way to
// check, such as one of a family it does not know.
var ErrUnverifiable = errors.New("the verifier cannot check this task")

// KnownTasks is the Verifier of the default seed set's task families: it
// recomputes the answer of a task of a family verify.Task knows and
// refuses a wrong output; a task of any other family is unverifiable.
func KnownTasks(t GeneratedTask) error {
	err := verify.Task(t.Instruction, t.Input, t.Output)
	if errors.Is(err, verify.ErrUnknownTask) {
		return fmt.Errorf("%w: %w", ErrUnverifiable, err)
	}
	return err
}
