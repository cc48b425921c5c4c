package eval

import (
	"context"
	"errors"
	"fmt"

	"github.com/gotune/gotune/data/verify"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// LoadModel loads a base model (a Hugging Face model directory or a GGUF
// file, mgguf.LoadBase) with its tokenizer and merges the adapters (PEFT
// directories) into the weights, in order: the model as a stage that
// trained on top of the others left it.
func LoadModel(base string, adapters ...string) (*model.Weights, *tokenizer.Tokenizer, error) {
	w, tok, err := mgguf.LoadBase(base)
	if err != nil {
		return nil, nil, err
	}
	if err := lora.MergeDirs(w, adapters...); err != nil {
		return nil, nil, err
	}
	return w, tok, nil
}

// Task is one prompt whose answer is known.
type Task struct {
	Prompt string // the prompt text, formatted as the model was trained on it
	Answer string // the reference answer
	Family string // the task family per-family scores group by ("": none)

	// Correct judges an answer; nil judges by verify.ExactMatch against
	// Answer.
	Correct func(answer string) bool
}

func (t *Task) correct(answer string) bool {
	if t.Correct != nil {
		return t.Correct(answer)
	}
	return verify.ExactMatch(answer, t.Answer)
}

// MatchConfig sets how ExactMatch decodes answers.
type MatchConfig struct {
	MaxTokens int      // new tokens per answer
	Stop      []string // strings that end an answer
	// Samples is the number of sampled answers per task, at Temperature,
	// besides the greedy one (0: greedy only).
	Samples     int
	Temperature float64
	// Seed seeds the answers: in each pass (greedy, then sampled) the k-th
	// answer to task i uses Seed + i·copies + k, copies being 1 or Samples.
	Seed  uint64
	Batch int // requests decoded together
}

// Validate reports the first invalid field.
func (c MatchConfig) Validate() error {
	switch {
	case c.MaxTokens < 1:
		return fmt.Errorf("eval: max tokens per answer must be positive, got %d", c.MaxTokens)
	case c.Samples < 0:
		return fmt.Errorf("eval: sampled answers per task must be ≥ 0, got %d", c.Samples)
	case c.Samples > 0 && c.Temperature <= 0:
		return fmt.Errorf("eval: the temperature of sampled answers must be positive, got %g", c.Temperature)
	case c.Batch < 1:
		return fmt.Errorf("eval: requests decoded together must be positive, got %d", c.Batch)
	}
	return nil
}

// Score is a model's exact-match accuracy on tasks, overall and per task
// family, greedy and sampled.
type Score struct {
	Model    string                 `json:"model"`
	Correct  int                    `json:"correct"`
	Total    int                    `json:"total"`
	Accuracy float64                `json:"accuracy"`
	Families map[string]FamilyScore `json:"families,omitempty"`
	Sampled  SampledScore           `json:"sampled"`
	// Right says, task by task in the order given, whether the greedy
	// answer was right: what paired comparisons of models use (Compare).
	Right []bool `json:"right,omitempty"`
}

// SampledScore is the exact-match rate of sampled answers: Samples answers
// per task at Temperature, each scored.
type SampledScore struct {
	Samples     int                    `json:"samples"`
	Temperature float64                `json:"temperature"`
	Correct     int                    `json:"correct"`
	Total       int                    `json:"total"`
	Accuracy    float64                `json:"accuracy"`
	Families    map[string]FamilyScore `json:"families,omitempty"`
}

// FamilyScore is the exact-match count of one task family.
type FamilyScore struct {
	Correct int `json:"correct"`
	Total   int `json:"total"`
}

// tally counts right answers, overall and per family.
type tally struct {
	correct, total int
	families       map[string]FamilyScore
}

func (t *tally) add(task *Task, right bool) {
	t.total++
	f := t.families[task.Family]
	f.Total++
	if right {
		t.correct++
		f.Correct++
	}
	if task.Family != "" {
		t.families[task.Family] = f
	}
}

func (t *tally) rate() float64 {
	if t.total == 0 {
		return 0
	}
	return float64(t.correct) / float64(t.total)
}

// ExactMatch has the engine answer every task greedily, and cfg.Samples
// times by sampling at cfg.Temperature, and scores each answer (Task.Correct,
// by default exact match up to white space). Prompts are encoded by tok with
// BOS as the prompt of a prompt–completion pair, as SFT trains on them. The
// result depends only on the model, the tasks and cfg.
func ExactMatch(ctx context.Context, e *generate.Engine, tok *tokenizer.Tokenizer, tasks []Task, cfg MatchConfig) (Score, error) {
	if err := cfg.Validate(); err != nil {
		return Score{}, err
	}
	if tok == nil {
		return Score{}, errors.New("eval: no tokenizer to encode the prompts")
	}
	prompts := make([][]int, len(tasks))
	for i := range tasks {
		prompts[i] = tok.EncodePromptCompletion(tasks[i].Prompt, "", true, false).IDs
	}
	// answer returns copies answers per task, task by task. Under mpirun
	// the ranks share the tasks (train.ShareWork); an answer's seed follows
	// its place, and the engine answers a request alike in any batch, so
	// any number of ranks gives one process's answers.
	answer := func(copies int, temperature float64) ([]string, error) {
		per, err := train.ShareWork(ctx, nil, len(tasks), func(first, last int) ([][]string, error) {
			reqs := make([]generate.Request, 0, (last-first)*copies)
			for i := first; i < last; i++ {
				for k := range copies {
					reqs = append(reqs, generate.Request{Prompt: prompts[i], Options: generate.Options{
						MaxTokens: cfg.MaxTokens, Stop: cfg.Stop, Temperature: temperature,
						Seed: cfg.Seed + uint64(i*copies+k),
					}})
				}
			}
			out := make([][]string, last-first)
			for lo := 0; lo < len(reqs); lo += cfg.Batch {
				hi := min(lo+cfg.Batch, len(reqs))
				res, err := e.Generate(ctx, reqs[lo:hi])
				if err != nil {
					return nil, fmt.Errorf("eval: answers %d–%d: %w", first*copies+lo, first*copies+hi-1, err)
				}
				for j, r := range res {
					out[(lo+j)/copies] = append(out[(lo+j)/copies], r.Text)
				}
			}
			return out, nil
		})
		if err != nil {
			return nil, err
		}
		answers := make([]string, 0, len(tasks)*copies)
		for i, a := range per {
			if len(a) != copies {
				return nil, fmt.Errorf("eval: task %d has %d answers, want %d", i, len(a), copies)
			}
			answers = append(answers, a...)
		}
		return answers, nil
	}
	greedy, err := answer(1, 0)
	if err != nil {
		return Score{}, err
	}
	g := tally{families: map[string]FamilyScore{}}
	right := make([]bool, len(tasks))
	for i := range tasks {
		right[i] = tasks[i].correct(greedy[i])
		g.add(&tasks[i], right[i])
	}
	s := Score{Correct: g.correct, Total: g.total, Accuracy: g.rate(), Families: g.families, Right: right,
		Sampled: SampledScore{Samples: cfg.Samples, Temperature: cfg.Temperature, Families: map[string]FamilyScore{}}}
	if cfg.Samples == 0 {
		return s, nil
	}
	sampled, err := answer(cfg.Samples, cfg.Temperature)
	if err != nil {
		return Score{}, err
	}
	st := tally{families: s.Sampled.Families}
	for j, a := range sampled {
		task := &tasks[j/cfg.Samples]
		st.add(task, task.correct(a))
	}
	s.Sampled.Correct, s.Sampled.Total, s.Sampled.Accuracy = st.correct, st.total, st.rate()
	return s, nil
}

// ScoreModel loads the base model, merges the adapters in order
// (LoadModel) and scores it on the tasks (ExactMatch).
func ScoreModel(ctx context.Context, base string, adapters []string, tasks []Task, cfg MatchConfig) (Score, error) {
	w, tok, err := LoadModel(base, adapters...)
	if err != nil {
		return Score{}, err
	}
	e, err := generate.New(w, tok)
	if err != nil {
		return Score{}, err
	}
	return ExactMatch(ctx, e, tok, tasks, cfg)
}
