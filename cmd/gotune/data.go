package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/tokenizer"
	"github.com/spf13/cobra"
)

// Sections of the data commands in a --config file, and their CLI-only
// keys (the keys of data import's options are data's constants).
const (
	sectionDataImport = "data.import"
	sectionDataStats  = "data.stats"
	sectionDataHead   = "data.head"

	dataImportKeyOut      = "out"
	dataStatsKeyTokenizer = "tokenizer"
	dataStatsKeyJSON      = "json"
	dataHeadKeyRows       = "n"
)

var dataCmd = &cobra.Command{
	Use:   "data",
	Short: "Import, inspect and summarise Arrow datasets",
}

var dataImportCmd = &cobra.Command{
	Use:   "import FILE --out OUT.arrow",
	Short: "Convert JSONL, JSON, CSV or Parquet into a gotune Arrow dataset",
	Long: `Convert a dataset into an Arrow IPC stream file that every gotune stage
and Hugging Face datasets (Dataset.from_file) read. The input may be JSON
lines (.jsonl, also .gz), a JSON array (.json), CSV/TSV (also .gz),
Parquet, or Arrow. The kind and shape are detected from the columns:

  alpaca                              instruction, input, output
  self-instruct                       + most_similar_instructions, avg_similarity_score
  trl-standard                        prompt, chosen, rejected (text)
  trl-standard-implicit-prompt        chosen, rejected sharing a prefix
  trl-conversational                  prompt, chosen, rejected (message lists)
  trl-conversational-implicit-prompt  chosen, rejected conversations
  hh-rlhf                             "\n\nHuman: … \n\nAssistant: …" transcripts
  ultrafeedback-binarized             conversations + score_chosen, score_rejected
  prompts / prompts-conversational    prompt

Other column names are mapped with --column-map gotune=input, e.g.
--column-map prompt=question (in a config file: column_map: [prompt=question]).
A bad row stops the import with an error naming file, row and column; with
--skip-invalid bad rows go to a rejects file with their reasons instead.`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		const s = sectionDataImport
		out := cfgString(s, dataImportKeyOut)
		if out == "" {
			return fmt.Errorf("data import needs --%s", dataImportKeyOut)
		}
		colMap, err := parseColumnMap(cfgStringSlice(s, data.KeyImportColumnMap))
		if err != nil {
			return err
		}
		opts := data.ImportOptions{
			Kind: data.Kind(cfgString(s, data.KeyImportKind)), Shape: cfgString(s, data.KeyImportShape),
			Format: cfgString(s, data.KeyImportFormat), ColumnMap: colMap,
			SkipInvalid: cfgBool(s, data.KeyImportSkipInvalid), RejectsPath: cfgString(s, data.KeyImportRejects),
			MaxRowBytes: cfgInt(s, data.KeyImportMaxRowBytes),
		}
		rep, err := data.ImportContext(cmd.Context(), args[0], out, opts)
		if err != nil {
			return err
		}
		printImportReport(cmd.OutOrStdout(), rep)
		return nil
	},
}

// parseColumnMap reads "gotune=input" pairs.
func parseColumnMap(pairs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range pairs {
		to, from, ok := strings.Cut(p, "=")
		if !ok || to == "" || from == "" {
			return nil, fmt.Errorf("%s %q: want gotune_column=input_column", data.KeyImportColumnMap, p)
		}
		m[strings.TrimSpace(to)] = strings.TrimSpace(from)
	}
	return m, nil
}

func printImportReport(w io.Writer, r data.ImportReport) {
	fmt.Fprintf(w, "%s → %s: %d rows of %s (%s, %s), columns %s\n",
		r.Input, r.Output, r.RowsWritten, r.Kind, r.Shape, r.Format, strings.Join(r.Columns, ", "))
	if r.RejectsPath == "" {
		return
	}
	reasons := make([]string, 0, len(r.Reasons))
	for k, n := range r.Reasons {
		reasons = append(reasons, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "%d of %d rows rejected", r.Rejected, r.RowsRead)
	if len(reasons) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(reasons, ", "))
	}
	fmt.Fprintf(w, ", written to %s\n", r.RejectsPath)
}

var dataStatsCmd = &cobra.Command{
	Use:   "stats FILE",
	Short: "Rows and prompt/completion length histograms of a dataset",
	Long: `Count the rows of an Arrow dataset and summarise the lengths of its prompts
and completions (min, mean, percentiles, power-of-two histogram). Lengths are
tokens of --tokenizer (a tokenizer.json or a directory holding one), or bytes
without one; conversations are measured as their message contents.`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		const s = sectionDataStats
		var opts data.StatsOptions
		if path := cfgString(s, dataStatsKeyTokenizer); path != "" {
			tok, err := tokenizer.Load(path)
			if err != nil {
				return err
			}
			opts.Count = func(text string) int { return len(tok.Encode(text, false)) }
		}
		st, err := data.ComputeStats(args[0], opts)
		if err != nil {
			return err
		}
		if cfgBool(s, dataStatsKeyJSON) {
			return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
		}
		return st.WriteText(cmd.OutOrStdout())
	},
}

var dataHeadCmd = &cobra.Command{
	Use:   "head FILE",
	Short: "Print the first rows of a dataset as JSON lines",
	Args:  cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		n := cfgInt(sectionDataHead, dataHeadKeyRows)
		if n < 0 {
			return fmt.Errorf("data head: -%s must not be negative, got %d", dataHeadKeyRows, n)
		}
		return data.Head(args[0], n, cmd.OutOrStdout())
	},
}

func init() {
	d := data.DefaultImportOptions()
	f := dataImportCmd.Flags()
	f.String(dataImportKeyOut, "", "output Arrow file")
	f.String(data.KeyImportKind, string(d.Kind), "dataset kind: instructions, generated_instructions, preferences, prompts (default: detected)")
	f.String(data.KeyImportShape, d.Shape, "input shape, e.g. hh-rlhf or trl-standard (default: detected)")
	f.String(data.KeyImportFormat, d.Format, "input format: jsonl, json, csv, tsv, parquet, arrow (default: from the extension)")
	f.StringSlice(data.KeyImportColumnMap, nil, "gotune_column=input_column, repeatable")
	f.Bool(data.KeyImportSkipInvalid, d.SkipInvalid, "skip invalid rows, writing them with reasons to the rejects file")
	f.String(data.KeyImportRejects, d.RejectsPath, "rejects file, with --skip-invalid (default: OUT.rejects.jsonl)")
	f.Int(data.KeyImportMaxRowBytes, d.MaxRowBytes, "largest accepted input row in bytes")
	bindFlags(dataImportCmd, sectionDataImport)

	f = dataStatsCmd.Flags()
	f.String(dataStatsKeyTokenizer, "", "tokenizer.json (or its directory) to count tokens with; bytes without")
	f.Bool(dataStatsKeyJSON, false, "print the statistics as JSON")
	bindFlags(dataStatsCmd, sectionDataStats)

	dataHeadCmd.Flags().IntP(dataHeadKeyRows, dataHeadKeyRows, 5, "rows to print")
	bindFlags(dataHeadCmd, sectionDataHead)

	dataCmd.AddCommand(dataImportCmd, dataStatsCmd, dataHeadCmd)
	rootCmd.AddCommand(dataCmd)
}
