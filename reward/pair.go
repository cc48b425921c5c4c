package reward

import (
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
)

// Pair is one encoded preference pair.
type Pair struct {
	Chosen, Rejected []int   // prompt + completion + EOS
	Margin           float64 // the row's margin (0 without one)
	Row              int     // dataset row
}

// encodePair encodes one preference row.
func encodePair(e *finetune.SequenceEncoder, p data.Preference, row int) (Pair, error) {
	prompt, err := e.Prompt(p.Prompt, p.PromptMessages)
	if err != nil {
		return Pair{}, err
	}
	c, err := e.Completion(p.Chosen, p.PromptMessages, p.ChosenMessages)
	if err != nil {
		return Pair{}, err
	}
	r, err := e.Completion(p.Rejected, p.PromptMessages, p.RejectedMessages)
	if err != nil {
		return Pair{}, err
	}
	out := Pair{Chosen: concat(prompt, c), Rejected: concat(prompt, r), Row: row}
	if p.Margin != nil {
		out.Margin = *p.Margin
	}
	return out, nil
}

func concat(a, b []int) []int {
	return append(append(make([]int, 0, len(a)+len(b)), a...), b...)
}
