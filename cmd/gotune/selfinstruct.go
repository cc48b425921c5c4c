package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/mpi"
	"github.com/gotune/gotune/selfinstruct"
)

// sectionSelfInstruct is self-instruct's section in a --config file.
const sectionSelfInstruct = "self_instruct"

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
		const s = sectionSelfInstruct
		c := selfinstruct.DefaultConfig()
		c.Output = cfgString(s, selfinstruct.KeyOutput)
		c.NumInstructions = cfgInt(s, selfinstruct.KeyNumInstructions)
		c.NumPromptInstructions = cfgInt(s, selfinstruct.KeyNumPromptInstructions)
		c.RequestBatchSize = cfgInt(s, selfinstruct.KeyRequestBatchSize)
		c.NumTasksPerPrompt = cfgInt(s, selfinstruct.KeyNumTasks)
		c.MaxTokens = cfgInt(s, selfinstruct.KeyMaxTokens)
		c.Temperature, c.TopP = cfgFloat(s, selfinstruct.KeyTemperature), cfgFloat(s, selfinstruct.KeyTopP)
		c.Seed = cfg.GetUint64(configKey(s, selfinstruct.KeySeed))
		c.SimilarityThreshold = cfgFloat(s, selfinstruct.KeySimilarityThreshold)
		c.MaxBatches = cfgInt(s, selfinstruct.KeyMaxBatches)
		c.Progress = os.Stderr
		if c.Output == "" {
			return fmt.Errorf("self-instruct needs --%s", selfinstruct.KeyOutput)
		}
		if p := cfgString(s, selfinstruct.KeySeedTasks); p != "" {
			seeds, err := selfinstruct.LoadSeedTasks(p)
			if err != nil {
				return err
			}
			c.SeedTasks = seeds
		}
		if p := cfgString(s, selfinstruct.KeyPromptHeader); p != "" {
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			c.PromptHeader = string(raw)
		}
		if cfgBool(s, selfinstruct.KeyVerify) {
			c.Verifier = selfinstruct.KnownTasks
		}
		c.RequireVerified = cfgBool(s, selfinstruct.KeyRequireVerified)
		template := cfgString(s, selfinstruct.KeyTeacherTemplate)
		if template == "none" {
			template = ""
		} else if !slices.Contains(finetune.InstructionTemplates, template) {
			return fmt.Errorf("--%s %q: want none or one of %s", selfinstruct.KeyTeacherTemplate, template, strings.Join(finetune.InstructionTemplates, ", "))
		}
		switch url := cfgString(s, selfinstruct.KeyTeacherURL); {
		case url != "" && template != "":
			return fmt.Errorf("--%s applies to a local teacher (--%s); an HTTP teacher's server applies its own template (--%s)",
				selfinstruct.KeyTeacherTemplate, engineKeyModel, selfinstruct.KeyTeacherChat)
		case url != "":
			t := selfinstruct.DefaultHTTPTeacher()
			t.BaseURL, t.Model = url, cfgString(s, selfinstruct.KeyTeacherModel)
			t.APIKey = os.Getenv(cfgString(s, selfinstruct.KeyTeacherAPIKeyEnv))
			t.Chat = cfgBool(s, selfinstruct.KeyTeacherChat)
			t.Timeout = cfg.GetDuration(configKey(s, selfinstruct.KeyTeacherTimeout))
			t.Retries = cfgInt(s, selfinstruct.KeyTeacherRetries)
			t.Concurrency = cfgInt(s, selfinstruct.KeyTeacherConcurrency)
			c.Teacher = &t
		case cfgString(s, engineKeyModel) != "":
			e, _, err := loadEngine(s)
			if err != nil {
				return err
			}
			c.Teacher = selfinstruct.LocalTeacher{Engine: e, Template: template}
		default:
			return fmt.Errorf("self-instruct needs a teacher: --%s or --%s", selfinstruct.KeyTeacherURL, engineKeyModel)
		}
		rep, err := selfinstruct.Run(cmd.Context(), c)
		if mpi.World().Rank() == 0 { // the other ranks only serve the teacher
			fmt.Fprintf(os.Stderr, "self-instruct: %s\n", rep)
		}
		return err
	},
}

func init() {
	d, dt := selfinstruct.DefaultConfig(), selfinstruct.DefaultHTTPTeacher()
	modelFlags(selfInstructCmd)
	f := selfInstructCmd.Flags()
	f.String(selfinstruct.KeyOutput, d.Output, "Arrow file to write (state kept beside it in OUTPUT.state.jsonl)")
	f.String(selfinstruct.KeySeedTasks, "", "seed tasks in Alpaca's JSONL format (default: the built-in set)")
	f.String(selfinstruct.KeyPromptHeader, "", "file with the request text placed before the examples ({num_tasks} is replaced)")
	f.Int(selfinstruct.KeyNumInstructions, d.NumInstructions, "stop once this many instructions are kept")
	f.Int(selfinstruct.KeyNumPromptInstructions, d.NumPromptInstructions, "seed tasks shown per prompt")
	f.Int(selfinstruct.KeyRequestBatchSize, d.RequestBatchSize, "prompts per batch, sent together")
	f.Int(selfinstruct.KeyNumTasks, d.NumTasksPerPrompt, "tasks each prompt asks for")
	f.Int(selfinstruct.KeyMaxTokens, d.MaxTokens, "longest reply")
	f.Float64(selfinstruct.KeyTemperature, d.Temperature, "teacher sampling temperature (0: greedy)")
	f.Float64(selfinstruct.KeyTopP, d.TopP, "teacher nucleus mass")
	f.Uint64(selfinstruct.KeySeed, d.Seed, "seed of prompt sampling and the teacher's sampling")
	f.Float64(selfinstruct.KeySimilarityThreshold, d.SimilarityThreshold, "drop instructions whose ROUGE-L F against a kept one exceeds this")
	f.Bool(selfinstruct.KeyVerify, false, "drop tasks of a known family (arithmetic, sorting, counting, …) whose output is wrong")
	f.Bool(selfinstruct.KeyRequireVerified, false, "with --verify, keep only tasks whose output was recomputed (drop tasks of unknown families)")
	f.Int(selfinstruct.KeyMaxBatches, d.MaxBatches, "stop after this many batches (0: no limit)")
	f.String(selfinstruct.KeyTeacherURL, "", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
	f.String(selfinstruct.KeyTeacherModel, "", "model name sent to the teacher")
	f.String(selfinstruct.KeyTeacherAPIKeyEnv, "OPENAI_API_KEY", "environment variable holding the teacher's API key")
	f.Bool(selfinstruct.KeyTeacherChat, dt.Chat, "use /chat/completions instead of /completions")
	f.String(selfinstruct.KeyTeacherTemplate, "none", "local teacher (--model): none (continue the raw prompt) or the template that sends it as a user message: "+strings.Join(finetune.InstructionTemplates, ", "))
	f.Duration(selfinstruct.KeyTeacherTimeout, dt.Timeout, "per-request timeout")
	f.Int(selfinstruct.KeyTeacherRetries, dt.Retries, "retries per request (with exponential backoff; 0: none)")
	f.Int(selfinstruct.KeyTeacherConcurrency, dt.Concurrency, "requests in flight (0: the whole batch)")
	bindFlags(selfInstructCmd, sectionSelfInstruct)
	rootCmd.AddCommand(selfInstructCmd)
}
