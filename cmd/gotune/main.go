// Command gotune fine-tunes LLaMA-architecture language models: pretraining
// of small models, supervised fine-tuning with LoRA, reward modelling, DPO,
// PPO, generation and export, all over Apache Arrow datasets.
//
// Every flag can also be set in a YAML file given with --config (under the
// command's section, e.g. `sft: {lora_r: 16}`) or by an environment variable
// GOTUNE_<SECTION>_<FLAG> (e.g. GOTUNE_SFT_LORA_R=16). Flags win over the
// environment, which wins over the file.
//
// May import: pipeline, serve, every stage, the shared fine-tuning layer
// (finetune, train, lora), model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas, internal/kernel and internal/mpi.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/internal/mpi"
)

// Keys of the root command's persistent flags, which every command has.
const (
	rootKeyConfig     = "config"
	rootKeyCPUProfile = "cpu-profile"
)

var rootCmd = &cobra.Command{
	Use:           "gotune",
	Short:         "Fine-tune LLaMA-architecture language models",
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
		if err := checkRanks(cmd); err != nil {
			return err
		}
		if err := blas.SettingError(); err != nil {
			return err
		}
		if err := loadConfig(cmd); err != nil {
			return err
		}
		return startProfile(cmd)
	},
	PersistentPostRunE: func(cmd *cobra.Command, args []string) error {
		return stopProfile()
	},
}

func init() {
	rootCmd.PersistentFlags().String(rootKeyConfig, "", "YAML config file (sections named after commands)")
	rootCmd.PersistentFlags().String(rootKeyCPUProfile, "", "write a Go CPU profile of the command to this file (read it with go tool pprof)")
}

// profileFile is the open CPU profile of --cpu-profile, if any.
var profileFile *os.File

// startProfile starts the CPU profile that --cpu-profile asks for.
func startProfile(cmd *cobra.Command) error {
	path, err := cmd.Flags().GetString(rootKeyCPUProfile)
	if err != nil || path == "" {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile %s: %w", path, err)
	}
	profileFile = f
	return nil
}

// stopProfile ends and closes the CPU profile, if one is running.
func stopProfile() error {
	if profileFile == nil {
		return nil
	}
	pprof.StopCPUProfile()
	f := profileFile
	profileFile = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}

func main() {
	reexecForKernels()
	world, err := mpi.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotune:", err)
		os.Exit(1)
	}
	if world.Rank() > 0 {
		// Only rank 0 reports; the other ranks print nothing but errors.
		if null, err := os.Open(os.DevNull); err == nil {
			os.Stdout = null
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = rootCmd.ExecuteContext(ctx)
	if perr := stopProfile(); perr != nil && err == nil { // also after a failed or interrupted command
		err = perr
	}
	prefix := "gotune:"
	if world.Size() > 1 {
		prefix = fmt.Sprintf("gotune: rank %d of %d:", world.Rank(), world.Size())
	}
	if err != nil {
		code := 1
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, prefix, "interrupted")
			code = 130
		} else {
			fmt.Fprintln(os.Stderr, prefix, err)
		}
		if world.Size() > 1 {
			// A rank that fails alone would leave the others waiting in a
			// collective call: end the whole job.
			world.Abort(code)
		}
		os.Exit(code)
	}
	if err := world.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, prefix, err)
		os.Exit(1)
	}
}
