package pipeline

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReport(t *testing.T) {
	run := t.TempDir()
	dpo := filepath.Join(run, "dpo")
	if err := os.MkdirAll(dpo, 0o755); err != nil {
		t.Fatal(err)
	}
	lines := `{"step":1,"loss":0.69,"rewards/margins":0.0,"learning_rate":0.001}
{"step":2,"loss":0.60,"rewards/margins":0.3,"learning_rate":0.0009}
{"step":2,"eval_loss":0.65,"eval_rewards/margins":0.2}
{"step":3,"loss":0.52,"rewards/margins":0.6,"learning_rate":0.0005}
`
	if err := os.WriteFile(filepath.Join(dpo, "metrics.jsonl"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	figs, err := WriteReport(run, []Summary{{Label: "DPO reward accuracy", Value: "0.81"}})
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string]Figure{}
	for _, f := range figs {
		byFile[f.File] = f
	}
	loss, ok := byFile["dpo_loss.png"]
	if !ok || len(byFile) != 3 {
		t.Fatalf("figures %v; want dpo loss, learning_rate and rewards/margins", figs)
	}
	// The plotted series are the run's numbers, train and eval.
	if len(loss.Series) != 2 || loss.Series[0].Values[2] != 0.52 || loss.Series[1].Metric != "eval_loss" || loss.Series[1].Values[0] != 0.65 {
		t.Fatalf("loss series %+v", loss.Series)
	}
	for f := range byFile {
		raw, err := os.ReadFile(filepath.Join(run, "report", f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s is not a PNG: %v", f, err)
		}
		if img.Bounds().Dx() < 100 {
			t.Fatalf("%s is %v", f, img.Bounds())
		}
	}
	page, err := os.ReadFile(filepath.Join(run, "report", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", `src="dpo_rewards_margins.png"`, "DPO reward accuracy", "0.81", "</html>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
}

func TestReadMetricsNamesBadLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "metrics.jsonl")
	os.WriteFile(p, []byte("{\"step\":1,\"loss\":1}\n{oops\n"), 0o644)
	if _, err := ReadMetrics(p); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("want error naming line 2, got %v", err)
	}
}

// TestSummarize reads the eval and pairs results and a stage's metrics back
// into table rows, and keeps a row for what is missing.
func TestSummarize(t *testing.T) {
	run := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(run, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("eval/"+FileEval, `[{"model":"base","correct":3,"total":10,"accuracy":0.3,"sampled":{"samples":4,"temperature":1,"correct":8,"total":40,"accuracy":0.2},
  "right":[true,true,true,false,false,false,false,false,false,false]},
{"model":"sft","correct":5,"total":10,"accuracy":0.5,"sampled":{"samples":4,"temperature":1,"correct":18,"total":40,"accuracy":0.45},
  "right":[true,true,false,true,true,true,false,false,false,false]},
{"model":"seeds","correct":2,"total":10,"accuracy":0.2,"right":[true,true,false,false,false,false,false,false,false,false]},
{"model":"seeds+self-instruct","correct":4,"total":10,"accuracy":0.4,"right":[true,false,true,true,true,false,false,false,false,false]}]`)
	write("self-instruct/"+FileSelfInstructReport, `{"RougeL": {"Kept":7,"Requests":8,"Batches":1,"Rejected":{"verifier":5,"unverifiable":3,"similar":6,"malformed":1,"truncated":2},
  "Verified":7,"SeedRougeL":{"N":7,"Mean":0.4,"Min":0.2,"P10":0.25,"Median":0.41,"P90":0.6,"Max":0.66}},
  "NoRougeL": {"Kept":12,"Requests":8,"Batches":1,"Rejected":{"verifier":5,"unverifiable":3,"duplicate":1,"malformed":1,"truncated":2},"Verified":12}}`)
	write("pairs/"+FilePairsReport, `{"tasks":20,"samples":80,"wrong":30,"pairs":12,"all_correct":8,"empty":0}`)
	write("sft/metrics.jsonl", "{\"step\":5,\"eval_loss\":1.5}\n{\"step\":10,\"eval_loss\":1.25}\n")

	rows := map[string]Summary{}
	for _, r := range Summarize(run) {
		rows[r.Label] = r
	}
	for label, want := range map[string][2]string{
		"exact match, base":                    {"0.300", "3/10 held-out tasks, greedy"},
		"exact match, sft":                     {"0.500", "5/10"},
		"exact match sampled, sft":             {"0.450", "18/40 answers, 4 per task at temperature 1"},
		"SFT model's mistakes paired":          {"12", "of 20 training tasks; 37.5% of 80 sampled answers wrong"},
		"SFT held-out loss":                    {"1.250", "first 1.500 at step 5, last at step 10"},
		"reward model accuracy":                {"—", "reward has no eval_accuracy"},
		"exact match sampled, base":            {"0.200", "8/40"},
		"PPO KL to reference":                  {"—", "ppo has no objective/kl"},
		"DPO reward accuracy":                  {"—", "dpo has no"},
		"PPO mean reward":                      {"—", "ppo has no"},
		"DPO reward margin":                    {"—", "dpo has no"},
		"GRPO mean reward":                     {"—", "grpo has no reward"},
		"GRPO groups without signal":           {"—", "grpo has no frac_reward_zero_std"},
		"exact match, seeds":                   {"0.200", "2/10"},
		"exact match, seeds+self-instruct":     {"0.400", "4/10"},
		"seeds+self-instruct vs seeds, greedy": {"+0.200", "3 tasks fixed, 1 broken"},
		"self-instruct tasks kept":             {"7", "of 24 tasks written in 8 prompts; dropped: 5 wrong answers, 3 not world tasks, 0 repeats, 6 too similar (ROUGE-L > 0.7), 3 malformed; ROUGE-L to the seeds median 0.41 (p10 0.25, p90 0.60, max 0.66)"},
		"same, no ROUGE-L filter":              {"12", "of 24 tasks written in 8 prompts; dropped: 5 wrong answers, 3 not world tasks, 1 repeats, 0 too similar"},
	} {
		r, ok := rows[label]
		if !ok || r.Value != want[0] || !strings.Contains(r.Note, want[1]) {
			t.Errorf("row %q = %+v, want value %s and a note containing %q", label, r, want[0], want[1])
		}
	}
	// A report that does not parse is named, not taken for a stage that
	// has not run.
	write("self-instruct/"+FileSelfInstructReport, "{not json")
	for _, r := range Summarize(run) {
		if r.Label == "self-instruct tasks kept" && !strings.Contains(r.Note, "unreadable") {
			t.Errorf("a corrupt self-instruct report: %+v", r)
		}
	}
	if len(rows) != 19 {
		t.Errorf("%d rows, want 19: %+v", len(rows), rows)
	}
}
