package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/selfinstruct"
)

var selfInstructCmd = &cobra.Command{
	Use:   "self-instruct",
	Short: "Generate instruction data from seed tasks (Alpaca's self-instruct)",
	Long: `Ask a teacher model for new tasks, three seed tasks per prompt, keep those that
pass Alpaca's filters (and --verify) and are not too similar (ROUGE-L) to any
kept instruction, and write them as an Arrow generated-instructions dataset.
The teacher is an OpenAI-compatible endpoint (--teacher-url, with its key read
from the environment variable named by --teacher-api-key-env) or a local model
(--model). An interrupted run resumes from OUTPUT.state.jsonl.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "self_instruct"
		c := selfinstruct.Config{
			Output: cfgString(s, "output"), NumInstructions: cfgInt(s, "num-instructions"),
			NumPromptInstructions: cfgInt(s, "num-prompt-instructions"), RequestBatchSize: cfgInt(s, "request-batch-size"),
			NumTasksPerPrompt: cfgInt(s, "num-tasks"), MaxTokens: cfgInt(s, "max-tokens"),
			Temperature: cfgFloat(s, "temperature"), TopP: cfgFloat(s, "top-p"), Seed: cfg.GetUint64(configKey(s, "seed")),
			SimilarityThreshold: cfgFloat(s, "similarity-threshold"), MaxBatches: cfgInt(s, "max-batches"),
			Progress: os.Stderr,
		}
		if c.Output == "" {
			return fmt.Errorf("self-instruct needs --output")
		}
		if p := cfgString(s, "seed-tasks"); p != "" {
			seeds, err := selfinstruct.LoadSeedTasks(p)
			if err != nil {
				return err
			}
			c.SeedTasks = seeds
		}
		if p := cfgString(s, "prompt-header"); p != "" {
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			c.PromptHeader = string(raw)
		}
		if cfgBool(s, "verify") {
			c.Verifier = selfinstruct.KnownTasks
		}
		switch url := cfgString(s, "teacher-url"); {
		case url != "":
			c.Teacher = &selfinstruct.HTTPTeacher{
				BaseURL: url, Model: cfgString(s, "teacher-model"), APIKey: os.Getenv(cfgString(s, "teacher-api-key-env")),
				Chat: cfgBool(s, "teacher-chat"), Timeout: cfg.GetDuration(configKey(s, "teacher-timeout")),
				Retries: cfgInt(s, "teacher-retries"), Concurrency: cfgInt(s, "teacher-concurrency"),
			}
		case cfgString(s, "model") != "":
			e, _, err := loadEngine(s)
			if err != nil {
				return err
			}
			c.Teacher = selfinstruct.LocalTeacher{Engine: e}
		default:
			return fmt.Errorf("self-instruct needs a teacher: --teacher-url or --model")
		}
		rep, err := selfinstruct.Run(cmd.Context(), c)
		fmt.Fprintf(os.Stderr, "self-instruct: %s\n", rep)
		return err
	},
}

func init() {
	modelFlags(selfInstructCmd)
	f := selfInstructCmd.Flags()
	f.String("output", "", "Arrow file to write (state kept beside it in OUTPUT.state.jsonl)")
	f.String("seed-tasks", "", "seed tasks in Alpaca's JSONL format (default: the built-in set)")
	f.String("prompt-header", "", "file with the request text placed before the examples ({num_tasks} is replaced)")
	f.Int("num-instructions", 100, "stop once this many instructions are kept")
	f.Int("num-prompt-instructions", 3, "seed tasks shown per prompt")
	f.Int("request-batch-size", 5, "prompts per batch, sent together")
	f.Int("num-tasks", 20, "tasks each prompt asks for")
	f.Int("max-tokens", 3072, "longest reply")
	f.Float64("temperature", 1, "teacher sampling temperature")
	f.Float64("top-p", 1, "teacher nucleus mass")
	f.Uint64("seed", 0, "seed of prompt sampling and the teacher's sampling")
	f.Float64("similarity-threshold", 0.7, "drop instructions whose ROUGE-L F against a kept one exceeds this")
	f.Bool("verify", false, "drop tasks of a known family (arithmetic, sorting, counting, …) whose output is wrong")
	f.Int("max-batches", 0, "stop after this many batches (0: no limit)")
	f.String("teacher-url", "", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
	f.String("teacher-model", "", "model name sent to the teacher")
	f.String("teacher-api-key-env", "OPENAI_API_KEY", "environment variable holding the teacher's API key")
	f.Bool("teacher-chat", false, "use /chat/completions instead of /completions")
	f.Duration("teacher-timeout", 2*time.Minute, "per-request timeout")
	f.Int("teacher-retries", 3, "retries per request (with exponential backoff)")
	f.Int("teacher-concurrency", 0, "requests in flight (0: the whole batch)")
	bindFlags(selfInstructCmd, "self_instruct")
	rootCmd.AddCommand(selfInstructCmd)
}
