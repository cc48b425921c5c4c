package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/gotune/gotune/eval"
)

// TestEvalCommandValidates: a zero or negative setting of `gotune eval` is
// an error naming its flag, never a silently applied default.
func TestEvalCommandValidates(t *testing.T) {
	d := eval.DefaultConfig()
	t.Cleanup(func() {
		for name, v := range map[string]string{
			eval.KeyModel: "", eval.KeyData: "", eval.KeyText: "", eval.KeyAdapter: "",
			eval.KeyBatchSize: strconv.Itoa(d.BatchSize), eval.KeyMaxRows: strconv.Itoa(d.MaxRows),
			eval.KeySeqLen: strconv.Itoa(d.SeqLen), eval.KeyTemplate: d.Template,
		} {
			f := evalCmd.Flags().Lookup(name)
			f.Value.Set(v)
			f.Changed = false
		}
	})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", "m", "--data", "d.arrow", "--batch-size", "0"}, "batch-size must be positive, got 0"},
		{[]string{"--model", "m", "--text", "t.txt", "--batch-size", "-2"}, "batch-size must be positive, got -2"},
		{[]string{"--model", "m", "--data", "d.arrow", "--max-rows", "-1"}, "max-rows"},
		{[]string{"--model", "m", "--text", "t.txt", "--seq-len", "1"}, "seq-len"},
		{[]string{"--model", "m", "--data", "d.arrow", "--template", "vicuna"}, "template"},
		{[]string{"--model", "m", "--text", "t.txt", "--adapter", "a"}, "adapter applies to data only"},
		{[]string{"--model", "m"}, "give text or data"},
		{[]string{"--data", "d.arrow"}, "model: no model directory"},
	} {
		args := append([]string{"eval", "--model", "", "--data", "", "--text", "", "--adapter", "", "--batch-size", "8",
			"--max-rows", "0", "--seq-len", "0", "--template", "alpaca"}, c.args...)
		_, err := runGotune(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("eval %s: error %v, want one saying %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
