package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/eval"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/selfinstruct"
	"github.com/gotune/gotune/sft"
)

// The self-instruct part of the default run. The base model's pretraining
// corpus holds task lists in the format of Alpaca's self-instruct prompts
// (world.TaskLists), so the base model is the teacher, asked as Alpaca
// asks its teacher: a header, two seed tasks, and the start of task 3.
// What it writes is parsed, filtered, verified by the world's checker and
// deduplicated by ROUGE-L like any teacher's reply. The seed-sft stage then
// measures what the kept tasks are worth: SFT on the seed tasks alone
// against SFT on the seeds plus the tasks Alpaca's filters kept, and plus
// every verified task, at equal updates, all scored by the eval stage.

// Self-instruct prompts of the default run: the tiny model has 256
// positions, which hold the header, two example tasks and two new ones
// (tasks 3 and 4; a reply stops where task 5 would begin).
const (
	teacherExamples    = 2
	teacherTasks       = 5
	teacherMaxTokens   = 96
	teacherTemperature = 0.7
	teacherBatch       = 8 // prompts per self-instruct batch
)

// FileSelfInstructReport is the self-instruct stage's SelfInstructReports,
// as JSON, in its stage directory.
const FileSelfInstructReport = "report.json"

// SelfInstructReports are the self-instruct stage's two runs on the same
// teacher replies (the same prompts and seeds): with Alpaca's ROUGE-L
// filter, and without it (every verified task that is not a duplicate).
type SelfInstructReports struct {
	RougeL, NoRougeL selfinstruct.Report
}

// worldVerifier confirms a generated task of the built-in world whose
// output is the right answer, refutes a wrong one, and cannot check
// anything else: the default run keeps only confirmed tasks, so its
// self-instruct data is verified, never taken on trust.
func worldVerifier(t selfinstruct.GeneratedTask) error {
	task, ok := world.Solve(t.Instruction, t.Input)
	if !ok {
		return fmt.Errorf("%w: not a task of the built-in world", selfinstruct.ErrUnverifiable)
	}
	if !world.Check(task, t.Output) {
		return errors.New("wrong answer")
	}
	return nil
}

// runSelfInstruct asks the base model for new tasks in Alpaca's
// self-instruct format and keeps the verified ones twice over: once with
// Alpaca's ROUGE-L filter (threshold 0.7), written to FileGenerated, and
// once without it, written to FileGeneratedNoRougeL; the replies are the
// same, since prompts and seeds depend only on the batch. It writes the
// SFT dataset: the world's instructions plus the tasks Alpaca's filter
// kept.
//
// The generated tasks and selfinstruct's resume state live in data/, not in
// the stage's own directory, which the runner clears when the stage's key
// changes; so a run that does not resume removes them itself, or it would
// continue what another teacher generated.
func (d *Default) runSelfInstruct(ctx context.Context, resume bool) error {
	if !resume {
		for _, f := range []string{FileGenerated, FileGeneratedNoRougeL} {
			for _, p := range []string{d.dataPath(f), d.dataPath(f) + ".state.jsonl"} {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("self-instruct: clear earlier output: %w", err)
				}
			}
		}
	}
	w, tok, err := eval.LoadModel(d.BaseDir)
	if err != nil {
		return err
	}
	engine, err := generate.New(w, tok)
	if err != nil {
		return err
	}
	seeds, err := selfinstruct.LoadSeedTasks(d.dataPath(FileSeedTasks))
	if err != nil {
		return err
	}
	run := func(output string, threshold float64) (selfinstruct.Report, error) {
		cfg := selfinstruct.DefaultConfig()
		cfg.Teacher = selfinstruct.LocalTeacher{Engine: engine}
		cfg.SeedTasks, cfg.Output, cfg.SimilarityThreshold = seeds, output, threshold
		cfg.PromptHeader, cfg.NumPromptInstructions, cfg.NumTasksPerPrompt = world.TaskListHeader, teacherExamples, teacherTasks
		cfg.MaxTokens, cfg.Temperature, cfg.RequestBatchSize = teacherMaxTokens, teacherTemperature, teacherBatch
		cfg.Seed, cfg.Verifier, cfg.RequireVerified = uint64(d.Sizes.WorldSeed), worldVerifier, true
		b := d.Sizes.SelfInstructBatches
		cfg.NumInstructions, cfg.MaxBatches, cfg.MaxIdleBatches = b*teacherBatch*(teacherTasks-teacherExamples-1), b, b+1
		return selfinstruct.Run(ctx, cfg)
	}
	var reps SelfInstructReports
	if reps.RougeL, err = run(d.dataPath(FileGenerated), selfinstruct.DefaultConfig().SimilarityThreshold); err != nil {
		return err
	}
	d.logf("  self-instruct: %s", reps.RougeL)
	if reps.NoRougeL, err = run(d.dataPath(FileGeneratedNoRougeL), 1); err != nil {
		return err
	}
	d.logf("  self-instruct without the ROUGE-L filter: %s", reps.NoRougeL)
	raw, err := json.MarshalIndent(reps, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(d.stageDir("self-instruct"), FileSelfInstructReport), append(raw, '\n')); err != nil {
		return err
	}
	rows, err := data.ReadInstructions(d.dataPath(FileInstructions))
	if err != nil {
		return err
	}
	gen, err := readGenerated(d.dataPath(FileGenerated))
	if err != nil {
		return err
	}
	return data.WriteInstructions(d.dataPath(FileSFT), append(rows, gen...))
}

// readGenerated reads the kept tasks as instruction rows.
func readGenerated(path string) ([]data.Instruction, error) {
	gen, err := data.ReadGeneratedInstructions(path)
	if err != nil {
		return nil, err
	}
	rows := make([]data.Instruction, len(gen))
	for i, g := range gen {
		rows[i] = g.Instruction
	}
	return rows, nil
}

// Arms of the seed-sft stage: SFT on the seed tasks alone, on the seeds
// plus the tasks Alpaca's filter kept, and on the seeds plus every
// verified task. Each arm's name is its model's name in the eval stage.
const (
	ModelSeeds             = "seeds"
	ModelSeedsSelfInstruct = "seeds+self-instruct"
	ModelSeedsNoRougeL     = "seeds+self-instruct-no-rouge"
)

// seedArms are the seed-sft arms with the generated file each adds to the
// seeds ("" for none).
var seedArms = []struct{ model, generated string }{
	{ModelSeeds, ""},
	{ModelSeedsSelfInstruct, FileGenerated},
	{ModelSeedsNoRougeL, FileGeneratedNoRougeL},
}

// seedAdapter is the adapter of a seed-sft arm.
func (d *Default) seedAdapter(model string) string {
	return finetune.AdapterDir(filepath.Join(d.stageDir("seed-sft"), model))
}

// runSeedSFT trains the arms of the self-instruct comparison from the base
// model with the SFT stage's settings and number of updates. The eval
// stage scores them on the held-out tasks.
func (d *Default) runSeedSFT(ctx context.Context, resume bool) error {
	seeds, err := selfinstruct.LoadSeedTasks(d.dataPath(FileSeedTasks))
	if err != nil {
		return err
	}
	var seedRows []data.Instruction
	for _, s := range seeds {
		for _, in := range s.Instances {
			seedRows = append(seedRows, data.Instruction{Instruction: s.Instruction, Input: in.Input, Output: in.Output, Source: "seed"})
		}
	}
	for _, arm := range seedArms {
		rows := seedRows[:len(seedRows):len(seedRows)]
		if arm.generated != "" {
			gen, err := readGenerated(d.dataPath(arm.generated))
			if err != nil {
				return err
			}
			rows = append(rows, gen...)
		}
		cfg := d.sftConfig(resume)
		cfg.Data, cfg.Rows = "", rows
		cfg.Out = filepath.Dir(d.seedAdapter(arm.model))
		res, err := sft.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("seed-sft %s: %w", arm.model, err)
		}
		d.logf("  seed-sft %s: %d rows: held-out loss %.4f → %.4f", arm.model, len(rows), res.BaseEvalLoss, res.EvalLoss)
	}
	return nil
}
