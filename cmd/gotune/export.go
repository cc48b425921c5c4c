package main

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/export"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/spf13/cobra"
)

// sectionExport is export's section in a --config file.
const sectionExport = "export"

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
		const s = sectionExport
		c := export.DefaultConfig()
		c.Base, c.Adapter = cfgString(s, export.KeyBase), cfgString(s, export.KeyAdapter)
		c.Out, c.AdapterOut = cfgString(s, export.KeyOut), cfgString(s, export.KeyAdapterOut)
		c.Format, c.AdapterGGUF = strings.ToLower(cfgString(s, export.KeyFormat)), cfgString(s, export.KeyAdapterGGUF)
		if c.Format == "" && mgguf.IsGGUF(c.Out) {
			c.Format = export.FormatGGUF
		}
		if c.Format == export.FormatGGUF {
			if cfg.IsSet(configKey(s, export.KeyMaxShardSize)) {
				return fmt.Errorf("export: %s applies to Hugging Face directories; a GGUF export is one file", export.KeyMaxShardSize)
			}
			d, err := mgguf.ParseDtype(cfgString(s, export.KeyDtype))
			if err != nil {
				return fmt.Errorf("export: %s: %w", export.KeyDtype, err)
			}
			c.GGUFDtype = d
			res, err := export.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			if c.Adapter == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "converted %s; wrote %s\n", res.Base, strings.Join(res.Files, ", "))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "merged %d adapted modules into %s; wrote %s\n", res.Modules, res.Base, strings.Join(res.Files, ", "))
			}
			return nil
		}
		if c.Adapter == "" || (c.Out == "" && c.AdapterGGUF == "") {
			return fmt.Errorf("export needs --%s and --%s", export.KeyAdapter, export.KeyOut)
		}
		size, err := export.ParseSize(cfgString(s, export.KeyMaxShardSize))
		if err != nil {
			return fmt.Errorf("--%s: %w", export.KeyMaxShardSize, err)
		}
		c.MaxShardBytes = size
		if c.Dtype, err = export.ParseDtype(cfgString(s, export.KeyDtype)); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		res, err := export.Run(cmd.Context(), c)
		if err != nil {
			return err
		}
		if c.Out == "" {
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the adapter of %d modules as %s\n", res.Modules, c.AdapterGGUF)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "merged %d adapted modules into %s; model in %s (%d files)\n",
			res.Modules, res.Base, c.Out, len(res.Files))
		return nil
	},
}

func init() {
	d := export.DefaultConfig()
	f := exportCmd.Flags()
	f.String(export.KeyBase, d.Base, "base model directory (default: the adapter's base_model_name_or_path)")
	f.String(export.KeyAdapter, d.Adapter, "PEFT adapter directory")
	f.String(export.KeyOut, d.Out, "merged model directory (or .gguf file) to write")
	f.String(export.KeyAdapterOut, d.AdapterOut, "also copy the adapter alone to this directory")
	f.String(export.KeyMaxShardSize, "5GB", "largest model.safetensors shard (e.g. 5GB, 200MB, 2GiB)")
	f.String(export.KeyDtype, strings.ToLower(string(d.Dtype)), "stored weight type: f32, f16 or bf16 (GGUF: also q8_0)")
	f.String(export.KeyFormat, d.Format, "hf (a Hugging Face directory) or gguf (one file for llama.cpp/Ollama, with a Modelfile; --base alone converts); default: gguf when --out ends in .gguf, else hf")
	f.String(export.KeyAdapterGGUF, d.AdapterGGUF, "also write the adapter alone as a llama.cpp LoRA adapter (.gguf)")
	bindFlags(exportCmd, sectionExport)
	rootCmd.AddCommand(exportCmd)
}
