package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/gotune/gotune/eval"
	"github.com/gotune/gotune/onpolicy"
	"github.com/gotune/gotune/selfinstruct"
)

// Summarize reads a run directory's results into the rows of the results
// table: held-out exact match per model, and each stage's own held-out
// measure at its first and last evaluation. Rows whose files are missing
// say so instead of disappearing.
func Summarize(runDir string) []Summary {
	var rows []Summary
	if raw, err := os.ReadFile(filepath.Join(runDir, "eval", FileEval)); err == nil {
		var scores []eval.Score
		if json.Unmarshal(raw, &scores) == nil {
			for _, s := range scores {
				rows = append(rows, Summary{
					Label: "exact match, " + s.Model,
					Value: fmt.Sprintf("%.3f", s.Accuracy),
					Note:  fmt.Sprintf("%d/%d held-out tasks, greedy; ± %.3f s.e.", s.Correct, s.Total, eval.StdErr(s.Accuracy, s.Total)),
				})
			}
			rows = append(rows, pairedRows(scores)...)
			for _, s := range scores {
				if s.Sampled.Total == 0 {
					continue
				}
				rows = append(rows, Summary{
					Label: "exact match sampled, " + s.Model,
					Value: fmt.Sprintf("%.3f", s.Sampled.Accuracy),
					Note: fmt.Sprintf("%d/%d answers, %d per task at temperature %g; ± %.3f s.e.",
						s.Sampled.Correct, s.Sampled.Total, s.Sampled.Samples, s.Sampled.Temperature,
						eval.StdErr(s.Sampled.Accuracy, s.Sampled.Total)),
				})
			}
		}
	} else {
		rows = append(rows, Summary{Label: "exact match", Value: "—", Note: "eval stage has not run"})
	}
	metric := func(stage, key, label, note string) {
		s, ok := series(runDir, stage, key)
		if !ok {
			rows = append(rows, Summary{Label: label, Value: "—", Note: stage + " has no " + key})
			return
		}
		first, last := s.Values[0], s.Values[len(s.Values)-1]
		rows = append(rows, Summary{Label: label, Value: fmt.Sprintf("%.3f", last),
			Note: fmt.Sprintf("%s; first %.3f at step %g, last at step %g", note, first, s.Steps[0], s.Steps[len(s.Steps)-1])})
	}
	rows = append(rows, selfInstructRows(runDir)...)
	metric("sft", "eval_loss", "SFT held-out loss", "completion tokens")
	if raw, err := os.ReadFile(filepath.Join(runDir, "pairs", FilePairsReport)); err == nil {
		var rep onpolicy.Report
		if json.Unmarshal(raw, &rep) == nil {
			rows = append(rows, Summary{Label: "SFT model's mistakes paired", Value: fmt.Sprintf("%d", rep.Pairs),
				Note: fmt.Sprintf("of %d training tasks; %.1f%% of %d sampled answers wrong", rep.Tasks, 100*rep.ErrorRate(), rep.Samples)})
		}
	} else {
		rows = append(rows, Summary{Label: "SFT model's mistakes paired", Value: "—", Note: "pairs stage has not run"})
	}
	metric("reward", "eval_accuracy", "reward model accuracy", "held-out pairs")
	metric("dpo", "eval_rewards/accuracies", "DPO reward accuracy", "held-out pairs")
	metric("dpo", "eval_rewards/margins", "DPO reward margin", "held-out pairs")
	metric("ppo", "objective/scores", "PPO mean reward", "reward-model score of rollouts")
	metric("ppo", "objective/kl", "PPO KL to reference", "per response")
	metric("grpo", "reward", "GRPO mean reward", "world checker on sampled completions")
	metric("grpo", "frac_reward_zero_std", "GRPO groups without signal", "share of groups whose completions are all right or all wrong")
	return rows
}

// pairedRows compare, task by task, SFT with the base model and DPO, PPO
// and GRPO with SFT (the model each starts from): the change in greedy exact match,
// how many tasks went from wrong to right and back, and the two-sided
// p-value of McNemar's exact test on those discordant tasks (eval.Compare).
func pairedRows(scores []eval.Score) []Summary {
	by := map[string]eval.Score{}
	for _, s := range scores {
		by[s.Model] = s
	}
	var rows []Summary
	for _, c := range [][2]string{{"sft", "base"}, {"dpo", "sft"}, {"ppo", "sft"}, {"grpo", "sft"},
		{ModelSeedsSelfInstruct, ModelSeeds}, {ModelSeedsNoRougeL, ModelSeeds}} {
		p, err := eval.Compare(by[c[0]].Right, by[c[1]].Right)
		if err != nil {
			continue // a model is missing, or scored on other tasks
		}
		rows = append(rows, Summary{
			Label: fmt.Sprintf("%s vs %s, greedy", c[0], c[1]),
			Value: fmt.Sprintf("%+.3f", p.Delta()),
			Note:  fmt.Sprintf("%d tasks fixed, %d broken; McNemar p = %.2g", p.Fixed, p.Broken, p.P()),
		})
	}
	return rows
}

// selfInstructRows are the self-instruct stage's outcome, with and
// without Alpaca's ROUGE-L filter: tasks kept of those the teacher wrote,
// why the others were dropped, and how far the kept instructions are from
// the seeds.
func selfInstructRows(runDir string) []Summary {
	path := filepath.Join(runDir, "self-instruct", FileSelfInstructReport)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []Summary{{Label: "self-instruct tasks kept", Value: "—", Note: "self-instruct stage has not run"}}
	}
	var reps SelfInstructReports
	if err == nil {
		err = json.Unmarshal(raw, &reps)
	}
	if err != nil {
		return []Summary{{Label: "self-instruct tasks kept", Value: "—", Note: fmt.Sprintf("unreadable %s: %v", path, err)}}
	}
	row := func(label string, rep selfinstruct.Report) Summary {
		written := rep.Kept
		for _, n := range rep.Rejected {
			written += n
		}
		note := fmt.Sprintf("of %d tasks written in %d prompts; dropped: %d wrong answers, %d not world tasks, %d repeats, %d too similar (ROUGE-L > 0.7), %d malformed",
			written, rep.Requests, rep.Rejected[selfinstruct.ReasonVerifier], rep.Rejected[selfinstruct.ReasonUnverifiable],
			rep.Rejected[selfinstruct.ReasonDuplicate], rep.Rejected[selfinstruct.ReasonSimilar],
			rep.Rejected[selfinstruct.ReasonMalformed]+rep.Rejected[selfinstruct.ReasonTruncated])
		if rep.Kept > 0 {
			note += "; ROUGE-L to the seeds " + rep.SeedRougeL.String()
		}
		return Summary{Label: label, Value: fmt.Sprint(rep.Kept), Note: note}
	}
	return []Summary{row("self-instruct tasks kept", reps.RougeL), row("same, no ROUGE-L filter", reps.NoRougeL)}
}

func series(runDir, stage, key string) (*Series, bool) {
	m, err := ReadMetrics(filepath.Join(runDir, stage, "metrics.jsonl"))
	if err != nil {
		return nil, false
	}
	s := m[key]
	return s, s != nil && len(s.Values) > 0
}

// PrintSummary writes the results table as aligned text.
func PrintSummary(w io.Writer, rows []Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\tnote")
	fmt.Fprintln(tw, strings.Repeat("-", 30)+"\t"+strings.Repeat("-", 6)+"\t"+strings.Repeat("-", 30))
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Label, r.Value, r.Note)
	}
	tw.Flush()
}
