// Package onpolicy builds preference pairs from a model's own answers. For
// each prompt whose correct answer is known it samples a few answers from the
// model, and pairs the correct answer (chosen) with the answer the model
// gives most often among those a verifier rejects (rejected).
//
// Preference training then pushes down exactly the mistakes the model makes,
// rather than mistakes someone guessed it would make: the self-play idea of
// SPIN (Chen et al. 2024, "Self-Play Fine-Tuning Converts Weak Language
// Models to Strong Language Models": chosen = the reference answer,
// rejected = the model's own answer), keeping only answers judged wrong, as
// Iterative RPO does (Pang et al. 2024, "Iterative Reasoning Preference
// Optimization").
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package onpolicy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/verify"
	"github.com/gotune/gotune/model/generate"
)

// Task is one prompt with its correct answer.
type Task struct {
	Prompt string // the prompt text, formatted as the model was trained on it
	Answer string // the correct completion: the chosen side of a pair

	// Correct reports whether an answer of the model is right; nil judges by
	// verify.ExactMatch against Answer.
	Correct func(answer string) bool
}

func (t *Task) correct(answer string) bool {
	if t.Correct != nil {
		return t.Correct(answer)
	}
	return verify.ExactMatch(answer, t.Answer)
}

// Config sets how answers are sampled.
type Config struct {
	Samples     int     // answers sampled per task (≥ 1)
	Temperature float64 // sampling temperature (0: greedy, then one sample is enough)
	TopP        float64 // nucleus mass in (0, 1] (1: off)
	MaxTokens   int     // new tokens per answer (≥ 1)
	Stop        []string
	Seed        uint64 // the k-th sample of task i uses Seed + i·Samples + k
	Batch       int    // sequences decoded together (≥ 1)

	// Encode turns a prompt into token ids; nil uses the engine's tokenizer
	// with its special tokens (BOS).
	Encode func(prompt string) []int
}

// DefaultConfig samples four answers of up to 32 tokens per task at
// temperature 1 from the whole distribution, 32 sequences at a time.
func DefaultConfig() Config {
	return Config{Samples: 4, Temperature: 1, TopP: 1, MaxTokens: 32, Batch: 32}
}

// Report counts what Mine saw.
type Report struct {
	Tasks      int `json:"tasks"`       // tasks asked
	Samples    int `json:"samples"`     // answers sampled
	Wrong      int `json:"wrong"`       // sampled answers the verifier rejected
	Pairs      int `json:"pairs"`       // pairs made: tasks with a non-empty wrong answer
	AllCorrect int `json:"all_correct"` // tasks all of whose answers were right (no pair)
	Empty      int `json:"empty"`       // wrong answers that were empty after trimming (never used as rejected)
}

// ErrorRate is the fraction of sampled answers that were wrong.
func (r Report) ErrorRate() float64 {
	if r.Samples == 0 {
		return 0
	}
	return float64(r.Wrong) / float64(r.Samples)
}

func (r Report) String() string {
	return fmt.Sprintf("%d pairs from %d tasks (%d answers sampled, %.1f%% wrong; %d tasks answered right every time)",
		r.Pairs, r.Tasks, r.Samples, 100*r.ErrorRate(), r.AllCorrect)
}

// Mine samples cfg.Samples answers to every task and returns one pair per
// task with a wrong answer: the task's Answer as chosen, the most frequent
// non-empty wrong answer as rejected (the earliest sampled among equally
// frequent ones). pairs[i] comes from tasks[index[i]]. The result depends
// only on the model, the tasks and cfg.
func Mine(ctx context.Context, e *generate.Engine, tasks []Task, cfg Config) (pairs []data.Preference, index []int, rep Report, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, Report{}, err
	}
	encode := cfg.Encode
	if encode == nil {
		tok := e.Tokenizer()
		if tok == nil {
			return nil, nil, Report{}, errors.New("onpolicy: the engine has no tokenizer and no Encode was given")
		}
		encode = func(p string) []int { return tok.Encode(p, true) }
	}
	batch := cfg.Batch
	// Requests run task by task, sample by sample, in batches.
	n := len(tasks) * cfg.Samples
	answers := make([]string, 0, n)
	prompts := make([][]int, len(tasks))
	for i := range tasks {
		prompts[i] = encode(tasks[i].Prompt)
	}
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		reqs := make([]generate.Request, 0, hi-lo)
		for j := lo; j < hi; j++ {
			reqs = append(reqs, generate.Request{Prompt: prompts[j/cfg.Samples], Options: generate.Options{
				MaxTokens: cfg.MaxTokens, Temperature: cfg.Temperature, TopP: cfg.TopP,
				Stop: cfg.Stop, Seed: cfg.Seed + uint64(j),
			}})
		}
		res, err := e.Generate(ctx, reqs)
		if err != nil {
			return nil, nil, Report{}, fmt.Errorf("onpolicy: sample answers %d–%d: %w", lo, hi-1, err)
		}
		for _, r := range res {
			answers = append(answers, r.Text)
		}
	}
	rep = Report{Tasks: len(tasks), Samples: n}
	for i := range tasks {
		t := &tasks[i]
		counts := map[string]int{}
		best, bestCount, wrong := "", 0, 0
		for _, a := range answers[i*cfg.Samples : (i+1)*cfg.Samples] {
			if t.correct(a) {
				continue
			}
			wrong++
			a = strings.TrimSpace(a)
			if a == "" {
				rep.Empty++
				continue
			}
			counts[a]++
			if counts[a] > bestCount {
				best, bestCount = a, counts[a]
			}
		}
		rep.Wrong += wrong
		if wrong == 0 {
			rep.AllCorrect++
		}
		if bestCount == 0 {
			continue
		}
		pairs = append(pairs, data.Preference{Prompt: t.Prompt, Chosen: t.Answer, Rejected: best})
		index = append(index, i)
		rep.Pairs++
	}
	return pairs, index, rep, nil
}
