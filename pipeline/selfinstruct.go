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
// against SFT on the seeds plus the kept tasks, at equal updates, both
// scored by the eval stage.

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

// FileSelfInstructReport is the self-instruct stage's selfinstruct.Report,
// as JSON, in its stage directory.
const FileSelfInstructReport = "report.json"

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
// self-instruct format, keeps the verified ones, and writes the SFT
// dataset: the world's instructions plus what was kept.
//
// The generated tasks and selfinstruct's resume state live in data/, not in
// the stage's own directory, which the runner clears when the stage's key
// changes; so a run that does not resume removes them itself, or it would
// continue what another teacher generated.
func (d *Default) runSelfInstruct(ctx context.Context, resume bool) error {
	if !resume {
		for _, p := range []string{d.dataPath(FileGenerated), d.dataPath(FileGenerated) + ".state.jsonl"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("self-instruct: clear earlier output: %w", err)
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
	cfg := selfinstruct.DefaultConfig()
	cfg.Teacher = selfinstruct.LocalTeacher{Engine: engine}
	cfg.SeedTasks, cfg.Output = seeds, d.dataPath(FileGenerated)
	cfg.PromptHeader, cfg.NumPromptInstructions, cfg.NumTasksPerPrompt = world.TaskListHeader, teacherExamples, teacherTasks
	cfg.MaxTokens, cfg.Temperature, cfg.RequestBatchSize = teacherMaxTokens, teacherTemperature, teacherBatch
	cfg.Seed, cfg.Verifier, cfg.RequireVerified = uint64(d.Sizes.WorldSeed), worldVerifier, true
	b := d.Sizes.SelfInstructBatches
	cfg.NumInstructions, cfg.MaxBatches, cfg.MaxIdleBatches = b*teacherBatch*(teacherTasks-teacherExamples-1), b, b+1
	rep, err := selfinstruct.Run(ctx, cfg)
	if err != nil {
		return err
	}
	d.logf("  self-instruct: %s", rep)
	raw, err := json.MarshalIndent(rep, "", "  ")
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
	gen, err := readGenerated(cfg.Output)
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

// seedAdapter is the adapter of the seed-sft stage trained on the seed
// tasks alone, or with the self-instruct tasks added.
func (d *Default) seedAdapter(withGenerated bool) string {
	arm := "seeds"
	if withGenerated {
		arm = "seeds+self-instruct"
	}
	return finetune.AdapterDir(filepath.Join(d.stageDir("seed-sft"), arm))
}

// runSeedSFT trains the two arms of the self-instruct comparison from the
// base model with the SFT stage's settings and number of updates: one on
// the seed tasks' instances alone, one on those plus every kept
// self-instruct task. The eval stage scores both on the held-out tasks.
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
	gen, err := readGenerated(d.dataPath(FileGenerated))
	if err != nil {
		return err
	}
	for _, arm := range []struct {
		generated bool
		rows      []data.Instruction
	}{{false, seedRows}, {true, append(seedRows[:len(seedRows):len(seedRows)], gen...)}} {
		cfg := d.sftConfig(resume)
		cfg.Data, cfg.Rows = "", arm.rows
		cfg.Out = filepath.Dir(d.seedAdapter(arm.generated))
		res, err := sft.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("seed-sft on %d rows: %w", len(arm.rows), err)
		}
		d.logf("  seed-sft: %d rows (%d self-instruct): held-out loss %.4f → %.4f", len(arm.rows), len(arm.rows)-len(seedRows), res.BaseEvalLoss, res.EvalLoss)
	}
	return nil
}
