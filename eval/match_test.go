package eval

import (
	"context"
	"reflect"
	"testing"

	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/tokenizer"
)

// TestExactMatch decodes the same requests as ExactMatch directly (greedy,
// seed Seed+i; sampled, seed Seed+i·Samples+k) and checks every count
// against them: tasks whose answer is the model's greedy answer (up to
// white space) are right, the others wrong, per family too.
func TestExactMatch(t *testing.T) {
	base, w, tok := modelDir(t)
	e, err := generate.New(w, tok)
	if err != nil {
		t.Fatal(err)
	}
	cfg := MatchConfig{MaxTokens: 3, Stop: []string{"\n"}, Samples: 3, Temperature: 1.5, Seed: 11, Batch: 4}
	prompts := []string{"Say hi.", "Add 1 and 2.", "Name a color.", "Count to three.", "Spell cat.", "Reverse dog."}
	direct := func(prompt string, temperature float64, seed uint64) string {
		t.Helper()
		ids := tok.EncodePromptCompletion(tokenizer.FormatAlpaca(prompt, ""), "", true, false).IDs
		res, err := e.Generate(context.Background(), []generate.Request{{Prompt: ids, Options: generate.Options{
			MaxTokens: cfg.MaxTokens, Stop: cfg.Stop, Temperature: temperature, Seed: seed}}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Text
	}
	tasks := make([]Task, len(prompts))
	wantRight := make([]bool, len(prompts))
	want := Score{Families: map[string]FamilyScore{}, Sampled: SampledScore{Samples: 3, Temperature: 1.5, Families: map[string]FamilyScore{}}}
	for i, p := range prompts {
		greedy := direct(p, 0, cfg.Seed+uint64(i))
		tasks[i] = Task{Prompt: tokenizer.FormatAlpaca(p, ""), Family: []string{"even", "odd"}[i%2]}
		switch i % 3 {
		case 0:
			tasks[i].Answer = " " + greedy + "\n" // right up to white space
		case 1:
			tasks[i].Answer = direct(p, cfg.Temperature, cfg.Seed+uint64(i*cfg.Samples)) // the first sampled answer
		case 2:
			tasks[i].Answer = greedy + "?" // wrong, whatever the model says
		}
		wantRight[i] = tasks[i].correct(greedy)
		f := want.Families[tasks[i].Family]
		f.Total++
		want.Total++
		if wantRight[i] {
			f.Correct++
			want.Correct++
		}
		want.Families[tasks[i].Family] = f
		for k := range cfg.Samples {
			a := direct(p, cfg.Temperature, cfg.Seed+uint64(i*cfg.Samples+k))
			f := want.Sampled.Families[tasks[i].Family]
			f.Total++
			want.Sampled.Total++
			if tasks[i].correct(a) {
				f.Correct++
				want.Sampled.Correct++
			}
			want.Sampled.Families[tasks[i].Family] = f
		}
	}
	want.Accuracy = float64(want.Correct) / float64(want.Total)
	want.Sampled.Accuracy = float64(want.Sampled.Correct) / float64(want.Sampled.Total)
	want.Right = wantRight

	got, err := ExactMatch(context.Background(), e, tok, tasks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ExactMatch = %+v\nwant %+v", got, want)
	}
	if want.Correct == 0 || want.Correct == want.Total || want.Sampled.Correct < 2 || want.Sampled.Correct == want.Sampled.Total {
		t.Errorf("greedy %d/%d, sampled %d/%d right: the test needs right and wrong answers of both kinds",
			want.Correct, want.Total, want.Sampled.Correct, want.Sampled.Total)
	}

	// ScoreModel loads the same model from its directory.
	fromDir, err := ScoreModel(context.Background(), base, nil, tasks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromDir, want) {
		t.Errorf("ScoreModel = %+v\nwant %+v", fromDir, want)
	}

	// A task's own judge replaces exact match; greedy only leaves the
	// sampled score empty.
	judged := append([]Task(nil), tasks...)
	for i := range judged {
		judged[i].Correct = func(string) bool { return true }
	}
	greedyOnly := cfg
	greedyOnly.Samples, greedyOnly.Temperature = 0, 0
	all, err := ExactMatch(context.Background(), e, tok, judged, greedyOnly)
	if err != nil {
		t.Fatal(err)
	}
	if all.Correct != len(tasks) || all.Sampled.Total != 0 || len(all.Sampled.Families) != 0 {
		t.Errorf("judged right, greedy only: %+v", all)
	}
	if _, err := ExactMatch(context.Background(), e, tok, tasks, MatchConfig{}); err == nil {
		t.Error("an invalid MatchConfig: no error")
	}
	if _, err := ScoreModel(context.Background(), base, []string{base}, tasks, cfg); err == nil {
		t.Error("a model directory given as an adapter: no error")
	}
}
