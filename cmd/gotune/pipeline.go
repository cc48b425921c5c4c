package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/pipeline"
)

// Section of `gotune pipeline` in a --config file, and the keys of its
// flags besides the sizes (whose keys are the `flag` tags of
// pipeline.Sizes).
const (
	sectionPipeline = "pipeline"

	pipelineKeyRun       = "run"
	pipelineKeyBase      = "base"
	pipelineKeyQuick     = "quick"
	pipelineKeyQuiet     = "quiet"
	pipelineKeyStages    = "stages"
	pipelineKeyAttention = "attention"
)

var pipelineCmd = &cobra.Command{
	Use:   "pipeline",
	Short: "Run every stage on the built-in world: base → data → self-instruct → seed-sft → sft → pairs → reward → dpo → ppo → grpo → export → eval, then the report",
	Long: `Runs the default pipeline in one run directory. Stages whose inputs and
settings are unchanged since they finished are skipped; an interrupted stage
resumes from its last checkpoint when the command is run again. The base
model is pretrained into --base when it is missing. The run ends with a
results table and an HTML report with plots in <run>/report/.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		const s = sectionPipeline
		z := pipeline.DefaultSizes()
		if cfgBool(s, pipelineKeyQuick) {
			z = pipeline.QuickSizes()
		}
		overrideSizes(&z, s)
		if err := z.Validate(); err != nil {
			return err
		}
		if note := speedNote(blas.Backend(), blas.Kernel()); note != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), note)
		}
		runDir, baseDir := cfgString(s, pipelineKeyRun), cfgString(s, pipelineKeyBase)
		for _, k := range []string{pipelineKeyRun, pipelineKeyBase} {
			if cfgString(s, k) == "" {
				return fmt.Errorf("pipeline: --%s must not be empty", k)
			}
		}
		attention := cfgString(s, pipelineKeyAttention)
		if attention == model.AttentionSoftmax {
			attention = "" // the default; the base stage's key stays that of earlier runs
		} else if !slices.Contains(model.AttentionNames, attention) {
			return fmt.Errorf("pipeline: --%s %q: want one of %s", pipelineKeyAttention, attention, strings.Join(model.AttentionNames, ", "))
		}
		d := &pipeline.Default{RunDir: runDir, BaseDir: baseDir, Sizes: z, Attention: attention,
			Quiet: cfgBool(s, pipelineKeyQuiet), Log: cmd.OutOrStdout()}
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return fmt.Errorf("run directory: %w", err)
		}
		resolved, err := yaml.Marshal(map[string]any{"pipeline": cfg.AllSettings()[s], "sizes": z})
		if err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(runDir, "config.yaml"), resolved); err != nil {
			return err
		}
		stages, err := pipeline.Select(d.Stages(), cfgStringSlice(s, pipelineKeyStages))
		if err != nil {
			return err
		}
		r := &pipeline.Runner{RunDir: runDir, Log: cmd.OutOrStdout()}
		if _, err := r.Run(cmd.Context(), stages); err != nil {
			return err
		}
		if len(stages) < len(d.Stages()) {
			return nil
		}
		rows := pipeline.Summarize(runDir)
		fmt.Fprintln(cmd.OutOrStdout())
		pipeline.PrintSummary(cmd.OutOrStdout(), rows)
		if _, err := pipeline.WriteReport(runDir, rows); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\nreport: %s\n", filepath.Join(runDir, "report", "index.html"))
		return nil
	},
}

var reportCmd = &cobra.Command{
	Use:   "report RUN_DIR",
	Short: "Write the HTML report with plots of a run directory (RUN_DIR/report/index.html)",
	Args:  cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		rows := pipeline.Summarize(args[0])
		pipeline.PrintSummary(cmd.OutOrStdout(), rows)
		figs, err := pipeline.WriteReport(args[0], rows)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\n%d plots; report: %s\n", len(figs), filepath.Join(args[0], "report", "index.html"))
		return nil
	},
}

func init() {
	f := pipelineCmd.Flags()
	f.String(pipelineKeyRun, "runs/demo", "run directory")
	f.String(pipelineKeyBase, "models/base", "base model directory (pretrained on the built-in world when missing)")
	f.Bool(pipelineKeyQuick, false, "a much smaller run (for tests and smoke checks)")
	f.Bool(pipelineKeyQuiet, false, "no progress bars")
	f.StringSlice(pipelineKeyStages, nil, "run only these stages, in pipeline order (e.g. base, or sft,dpo); their inputs must exist")
	f.String(pipelineKeyAttention, model.AttentionSoftmax, "the base model's attention: softmax, linear or gau (gotune_attention; give each its own --base)")
	addSizeFlags(f)
	bindFlags(pipelineCmd, sectionPipeline)
	rootCmd.AddCommand(pipelineCmd, reportCmd)
}

// addSizeFlags declares one flag per field of pipeline.Sizes (its `flag` and
// `help` tags), defaulting to DefaultSizes.
func addSizeFlags(f *pflag.FlagSet) {
	def := reflect.ValueOf(pipeline.DefaultSizes())
	for i := range def.NumField() {
		field := def.Type().Field(i)
		name, help := field.Tag.Get("flag"), field.Tag.Get("help")
		if name == "" {
			panic("pipeline.Sizes." + field.Name + " has no flag tag")
		}
		f.Int64(name, def.Field(i).Int(), help)
	}
}

// overrideSizes sets the fields of z whose flag, environment variable or
// config key differs from DefaultSizes (so that --quick keeps its own sizes
// for the settings left alone).
func overrideSizes(z *pipeline.Sizes, section string) {
	def := reflect.ValueOf(pipeline.DefaultSizes())
	v := reflect.ValueOf(z).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("flag")
		if n := cfg.GetInt64(configKey(section, name)); n != def.Field(i).Int() {
			v.Field(i).SetInt(n)
		}
	}
}

// speedNote tells a user of the pure-Go build on a CPU its assembly
// kernels do not cover (no AVX2, or the purego tag) how to get the fast
// path; "" when the build already has it (kernel is blas.Kernel()).
func speedNote(backend, kernel string) string {
	if backend != "purego" || strings.Contains(kernel, "assembly") {
		return ""
	}
	return "note: this build multiplies matrices with gonum's portable Go code (this CPU has no AVX2, " +
		"or the build used -tags purego), several times slower than on AVX2 or AVX-512; " +
		"install OpenBLAS (Debian: apt-get install libopenblas-dev) and rebuild with -tags openblas for the fast path"
}
