// Command gotune fine-tunes LLaMA-architecture language models: pretraining
// of small models, supervised fine-tuning with LoRA, reward modelling, DPO,
// PPO, generation and export, all over Apache Arrow datasets.
//
// Every flag can also be set in a YAML file given with --config (under the
// command's section, e.g. `sft: {lora_r: 16}`) or by an environment variable
// GOTUNE_<SECTION>_<FLAG> (e.g. GOTUNE_SFT_LORA_R=16). Flags win over the
// environment, which wins over the file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "gotune",
	Short:         "Fine-tune LLaMA-architecture language models",
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
		return loadConfig(cmd)
	},
}

func init() {
	rootCmd.PersistentFlags().String("config", "", "YAML config file (sections named after commands)")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "gotune: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "gotune:", err)
		os.Exit(1)
	}
}
