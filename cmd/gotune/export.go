package main

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/export"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/spf13/cobra"
)

var exportCmd = &cobra.Command{
	Use:   "export",
	Short: "Merge a LoRA adapter into its base model and write a Hugging Face model directory",
	Long: `Fold the adapter in --adapter (PEFT format) into the base model and write
the merged model to --out: config.json, model.safetensors (sharded with an
index above --max-shard-size), generation_config.json and the base's tokenizer
files. --base defaults to the base_model_name_or_path the adapter records.
With --adapter-out the adapter alone is copied there too. Directories are
written under a temporary name and renamed into place.

With --format gguf (or an --out ending in .gguf) the merged model is one
GGUF file for llama.cpp, Ollama and LM Studio (--dtype f32, f16, bf16 or
q8_0), with an Ollama Modelfile beside it; --base alone, without an
adapter, converts a model directory. --adapter-gguf writes the adapter
alone as a llama.cpp LoRA adapter, to use with the base's GGUF.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "export"
		cfg := export.DefaultConfig()
		cfg.Base, cfg.Adapter, cfg.Out, cfg.AdapterOut = cfgString(s, "base"), cfgString(s, "adapter"), cfgString(s, "out"), cfgString(s, "adapter-out")
		cfg.Format, cfg.AdapterGGUF = strings.ToLower(cfgString(s, "format")), cfgString(s, "adapter-gguf")
		if cfg.Format == "" && mgguf.IsGGUF(cfg.Out) {
			cfg.Format = export.FormatGGUF
		}
		if cfg.Format == export.FormatGGUF {
			d, err := mgguf.ParseDtype(cfgString(s, "dtype"))
			if err != nil {
				return fmt.Errorf("--dtype: %w", err)
			}
			cfg.GGUFDtype = d
			res, err := export.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if cfg.Adapter == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "converted %s; wrote %s\n", res.Base, strings.Join(res.Files, ", "))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "merged %d adapted modules into %s; wrote %s\n", res.Modules, res.Base, strings.Join(res.Files, ", "))
			}
			return nil
		}
		if cfg.Adapter == "" || (cfg.Out == "" && cfg.AdapterGGUF == "") {
			return fmt.Errorf("export needs --adapter and --out")
		}
		size, err := export.ParseSize(cfgString(s, "max-shard-size"))
		if err != nil {
			return fmt.Errorf("--max-shard-size: %w", err)
		}
		cfg.MaxShardBytes = size
		switch d := strings.ToUpper(cfgString(s, "dtype")); d {
		case "F32", "FLOAT32":
			cfg.Dtype = safetensors.F32
		case "F16", "FLOAT16":
			cfg.Dtype = safetensors.F16
		case "BF16", "BFLOAT16":
			cfg.Dtype = safetensors.BF16
		default:
			return fmt.Errorf("--dtype %q: want f32, f16 or bf16", d)
		}
		res, err := export.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		if cfg.Out == "" {
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the adapter of %d modules as %s\n", res.Modules, cfg.AdapterGGUF)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "merged %d adapted modules into %s; model in %s (%d files)\n",
			res.Modules, res.Base, cfg.Out, len(res.Files))
		return nil
	},
}

func init() {
	f := exportCmd.Flags()
	f.String("base", "", "base model directory (default: the adapter's base_model_name_or_path)")
	f.String("adapter", "", "PEFT adapter directory")
	f.String("out", "", "merged model directory to write")
	f.String("adapter-out", "", "also copy the adapter alone to this directory")
	f.String("max-shard-size", "5GB", "largest model.safetensors shard (e.g. 5GB, 200MB, 2GiB)")
	f.String("dtype", "f32", "stored weight type: f32, f16 or bf16 (GGUF: also q8_0)")
	f.String("format", "", "hf (a Hugging Face directory) or gguf (one file for llama.cpp/Ollama, with a Modelfile; --base alone converts); default: gguf when --out ends in .gguf, else hf")
	f.String("adapter-gguf", "", "also write the adapter alone as a llama.cpp LoRA adapter (.gguf)")
	bindFlags(exportCmd, "export")
	rootCmd.AddCommand(exportCmd)
}
