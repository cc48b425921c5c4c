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
