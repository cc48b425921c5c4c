package onpolicy

import (
	"context"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model/generate"
)

// tinyEngine is a small random model over a byte-level tokenizer: its
// answers are arbitrary bytes, different for different seeds.
func tinyEngine(t *testing.T) *generate.Engine {
	t.Helper()
	return tinymodel.Engine(t, 5, 256, "<s>", "</s>")
}

// TestMineMatchesItsSamples decodes the same requests as Mine directly and
// checks every pair against them: chosen is the task's answer, rejected the
// most frequent non-empty wrong answer, and the report's counts add up.
func TestMineMatchesItsSamples(t *testing.T) {
	e := tinyEngine(t)
	tok := e.Tokenizer()
	cfg := DefaultConfig()
	cfg.Samples, cfg.Temperature, cfg.MaxTokens, cfg.Seed, cfg.Batch = 3, 1.5, 3, 11, 4
	// "Right" answers: those starting with a byte below 'm' (a rule the
	// random model satisfies sometimes), so that tasks fall on both sides.
	lowFirst := func(a string) bool { return a != "" && a[0] < 'm' }
	tasks := []Task{
		{Prompt: "alpha", Answer: "A", Correct: lowFirst},
		{Prompt: "beta", Answer: "B", Correct: lowFirst},
		{Prompt: "gamma", Answer: "C", Correct: func(string) bool { return true }},  // never wrong
		{Prompt: "delta", Answer: "D", Correct: func(string) bool { return false }}, // always wrong
		{Prompt: "epsilon", Answer: "E", Correct: lowFirst},
		{Prompt: "zeta", Answer: "F", Correct: lowFirst},
	}
	pairs, index, rep, err := Mine(context.Background(), e, tasks, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// The reference: the same requests, one Generate call each.
	var wantPairs, wrong, allCorrect, empty int
	for i, task := range tasks {
		counts := map[string]int{}
		var order []string
		taskWrong := 0
		for k := range cfg.Samples {
			res, err := e.Generate(context.Background(), []generate.Request{{
				Prompt: tok.Encode(task.Prompt, true),
				Options: generate.Options{MaxTokens: cfg.MaxTokens, Temperature: cfg.Temperature,
					Seed: cfg.Seed + uint64(i*cfg.Samples+k)},
			}})
			if err != nil {
				t.Fatal(err)
			}
			a := res[0].Text
			if task.Correct(a) {
				continue
			}
			taskWrong++
			a = strings.TrimSpace(a)
			if a == "" {
				empty++
				continue
			}
			if counts[a] == 0 {
				order = append(order, a)
			}
			counts[a]++
		}
		wrong += taskWrong
		if taskWrong == 0 {
			allCorrect++
		}
		if len(order) == 0 {
			continue
		}
		best := order[0]
		for _, a := range order {
			if counts[a] > counts[best] {
				best = a
			}
		}
		if wantPairs >= len(pairs) {
			t.Fatalf("task %d: want a pair with rejected %q, Mine made only %d pairs", i, best, len(pairs))
		}
		p := pairs[wantPairs]
		if index[wantPairs] != i || p.Prompt != task.Prompt || p.Chosen != task.Answer || p.Rejected != best {
			t.Errorf("pair %d = task %d %+v, want task %d {%q %q %q}", wantPairs, index[wantPairs], p, i, task.Prompt, task.Answer, best)
		}
		wantPairs++
	}
	if len(pairs) != wantPairs || len(index) != wantPairs {
		t.Errorf("Mine made %d pairs (%d indices), want %d", len(pairs), len(index), wantPairs)
	}
	want := Report{Tasks: len(tasks), Samples: len(tasks) * cfg.Samples, Wrong: wrong, Pairs: wantPairs, AllCorrect: allCorrect, Empty: empty}
	if rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	// The fixed verdicts must show in the result whatever the model says.
	if rep.AllCorrect < 1 || !hasIndex(index, 3) || hasIndex(index, 2) {
		t.Errorf("the never-wrong task 2 and the always-wrong task 3: indices %v, report %+v", index, rep)
	}
	if rep.Pairs < 2 || rep.Pairs == len(tasks) {
		t.Logf("the random model's answers fell on one side only: %+v", rep)
	}
}

func hasIndex(index []int, i int) bool {
	for _, j := range index {
		if j == i {
			return true
		}
	}
	return false
}

// TestMineGreedy: at temperature 0 the rejected answer is the model's greedy
// answer, and exact match against Answer is the default verifier.
func TestMineGreedy(t *testing.T) {
	e := tinyEngine(t)
	tok := e.Tokenizer()
	res, err := e.Generate(context.Background(), []generate.Request{{Prompt: tok.Encode("question", true), Options: generate.Options{MaxTokens: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	greedy := res[0].Text
	if strings.TrimSpace(greedy) == "" {
		t.Skip("the random model's greedy answer is blank")
	}
	cfg := DefaultConfig()
	cfg.Samples, cfg.Temperature, cfg.MaxTokens = 1, 0, 4
	tasks := []Task{
		{Prompt: "question", Answer: greedy + "x"}, // the model is wrong
		{Prompt: "question", Answer: greedy},       // the model is right
	}
	pairs, index, rep, err := Mine(context.Background(), e, tasks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 1 || index[0] != 0 || pairs[0].Rejected != strings.TrimSpace(greedy) || pairs[0].Chosen != greedy+"x" {
		t.Fatalf("pairs %+v (indices %v), want one for task 0 rejecting %q", pairs, index, greedy)
	}
	if rep.AllCorrect != 1 || rep.Wrong != 1 {
		t.Errorf("report %+v, want 1 wrong answer and 1 task always right", rep)
	}
}

// TestMineRejectsBadConfig: every invalid field stops Mine with an error
// naming its key.
func TestMineRejectsBadConfig(t *testing.T) {
	e := tinyEngine(t)
	mine := func(c Config) error {
		_, _, _, err := Mine(context.Background(), e, []Task{{Prompt: "p", Answer: "a"}}, c)
		return err
	}
	configtest.Check(t, DefaultConfig(), Config.Validate, mine, []configtest.Case[Config]{
		{Key: KeySamples, Edit: func(c *Config) { c.Samples = 0 }},
		{Key: KeyTemperature, Edit: func(c *Config) { c.Temperature = -1 }},
		{Key: KeyTopP, Edit: func(c *Config) { c.TopP = 0 }},
		{Key: KeyTopP, Edit: func(c *Config) { c.TopP = 1.01 }},
		{Key: KeyMaxTokens, Edit: func(c *Config) { c.MaxTokens = 0 }},
		{Key: KeyStop, Edit: func(c *Config) { c.Stop = []string{"\n", ""} }},
		{Key: "Batch", Edit: func(c *Config) { c.Batch = 0 }},
	})
}
