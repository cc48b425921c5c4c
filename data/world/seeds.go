package world

import (
	"encoding/json"
	"fmt"
	"io"
)

// SeedTask is one self-instruct seed task in Stanford Alpaca's seed format
// (seed_tasks.jsonl): an instruction with example instances.
type SeedTask struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	Instruction      string         `json:"instruction"`
	Instances        []SeedInstance `json:"instances"`
	IsClassification bool           `json:"is_classification"`
}

// SeedInstance is one input/output example of a seed task ("" input when the
// instruction stands alone, as in Alpaca's seeds).
type SeedInstance struct {
	Input  string `json:"input"`
	Output string `json:"output"`
}

// SeedTasks returns one seed task per phrasing of every family in use, each
// with one Train-split instance. None is a classification task: every answer
// is computed, not picked from a fixed label set.
func (w *World) SeedTasks() []SeedTask {
	r := w.rng("seeds", Train)
	var out []SeedTask
	for _, f := range w.families() {
		spec := familyOf(f)
		for k, tpl := range spec.templates {
			var it item
			for it = spec.draw(r); SplitOf(it.key()) != Train; it = spec.draw(r) {
			}
			t := it.task(tpl, r)
			out = append(out, SeedTask{
				ID:          fmt.Sprintf("seed_task_%d", len(out)),
				Name:        fmt.Sprintf("%s_%d", spec.seedName, k+1),
				Instruction: t.Instruction,
				Instances:   []SeedInstance{{Input: t.Input, Output: t.Answer}},
			})
		}
	}
	return out
}

// WriteSeedTasks writes seed tasks as JSON lines, the format of Alpaca's
// seed_tasks.jsonl.
func WriteSeedTasks(w io.Writer, tasks []SeedTask) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, t := range tasks {
		if err := enc.Encode(t); err != nil {
			return fmt.Errorf("world: write seed task %d: %w", i, err)
		}
	}
	return nil
}
