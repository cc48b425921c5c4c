package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/gotune/gotune/internal/configtest"
)

type obj = map[string]any

func msgs(pairs ...string) []any {
	var out []any
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, obj{"role": pairs[i], "content": pairs[i+1]})
	}
	return out
}

// ---- fixture writers ----------------------------------------------------------

func writeJSONL(t testing.TB, path string, rows []obj) {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	writeFile(t, path, b.Bytes())
}

func writeFile(t testing.TB, path string, content []byte) {
	t.Helper()
	if strings.HasSuffix(path, ".gz") {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(content)
		zw.Close()
		content = z.Bytes()
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeJSONArray(t testing.TB, path string, rows []obj) {
	t.Helper()
	js, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, js)
}

// columnsOf lists the keys of rows in first-seen order (sorted per row).
func columnsOf(rows []obj) []string {
	seen := map[string]bool{}
	var cols []string
	for _, r := range rows {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	return cols
}

func writeCSV(t testing.TB, path string, rows []obj, tab bool) {
	t.Helper()
	cols := columnsOf(rows)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if tab {
		w.Comma = '\t'
	}
	w.Write(cols)
	for _, r := range rows {
		rec := make([]string, len(cols))
		for i, c := range cols {
			switch v := r[c].(type) {
			case string:
				rec[i] = v
			case float64:
				js, _ := json.Marshal(v)
				rec[i] = string(js)
			case nil:
			default:
				t.Fatalf("csv fixture: column %s has %T", c, v)
			}
		}
		w.Write(rec)
	}
	w.Flush()
	writeFile(t, path, b.Bytes())
}

// arrowSchemaOf infers an Arrow schema from the first row holding each
// column: text, float64, or a list of structs of text.
func arrowSchemaOf(t testing.TB, rows []obj) *arrow.Schema {
	t.Helper()
	var fields []arrow.Field
	for _, c := range columnsOf(rows) {
		var v any
		for _, r := range rows {
			if r[c] != nil {
				v = r[c]
				break
			}
		}
		var typ arrow.DataType
		switch v := v.(type) {
		case string:
			typ = arrow.BinaryTypes.String
		case float64:
			typ = arrow.PrimitiveTypes.Float64
		case []any:
			keys := columnsOf([]obj{v[0].(obj)})
			var fs []arrow.Field
			for _, k := range keys {
				fs = append(fs, arrow.Field{Name: k, Type: arrow.BinaryTypes.String, Nullable: true})
			}
			typ = arrow.ListOf(arrow.StructOf(fs...))
		default:
			t.Fatalf("arrow fixture: column %s has %T", c, v)
		}
		fields = append(fields, arrow.Field{Name: c, Type: typ, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

func recordOf(t testing.TB, rows []obj) arrow.RecordBatch {
	t.Helper()
	js, _ := json.Marshal(rows)
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, arrowSchemaOf(t, rows), bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func writeParquet(t testing.TB, path string, rows []obj) {
	t.Helper()
	rec := recordOf(t, rows)
	defer rec.Release()
	writeParquetRecord(t, path, rec)
}

func writeParquetRecord(t testing.TB, path string, rec arrow.RecordBatch) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeArrowStream(t testing.TB, path string, rows []obj) {
	t.Helper()
	rec := recordOf(t, rows)
	defer rec.Release()
	var b bytes.Buffer
	w := ipc.NewWriter(&b, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	writeFile(t, path, b.Bytes())
}

// ---- shapes -------------------------------------------------------------------

type shapeCase struct {
	name  string
	shape string
	kind  Kind
	rows  []obj
	want  any // []Instruction, []Preference, ...
	plain bool
}

func shapeCases() []shapeCase {
	return []shapeCase{
		{
			name: "alpaca", shape: ShapeAlpaca, kind: KindInstructions, plain: true,
			rows: []obj{
				{"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat, sleep, move."},
				{"instruction": "Translate to French.", "input": "cheese", "output": "fromage"},
			},
			want: []Instruction{
				{Instruction: "Give three tips for staying healthy.", Output: "Eat, sleep, move."},
				{Instruction: "Translate to French.", Input: "cheese", Output: "fromage"},
			},
		},
		{
			name: "messages", shape: ShapeMessages, kind: KindInstructions,
			rows: []obj{
				{"messages": msgs("system", "Be terse.", "user", "2+2?", "assistant", "4", "user", "And 3+3?", "assistant", "6")},
				{"messages": msgs("user", "Hi", "assistant", "Hello!")},
			},
			want: []Instruction{
				{Messages: []Message{{"system", "Be terse."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "And 3+3?"}, {"assistant", "6"}}},
				{Messages: []Message{{"user", "Hi"}, {"assistant", "Hello!"}}},
			},
		},
		{
			name: "sharegpt", shape: ShapeShareGPT, kind: KindInstructions,
			rows: []obj{
				{"id": "x1", "conversations": []any{obj{"from": "system", "value": "Be terse."}, obj{"from": "human", "value": "2+2?"},
					obj{"from": "gpt", "value": "4"}, obj{"from": "human", "value": "And 3+3?"}, obj{"from": "gpt", "value": "6"}}},
			},
			want: []Instruction{
				{Messages: []Message{{"system", "Be terse."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "And 3+3?"}, {"assistant", "6"}}},
			},
		},
		{
			name: "trl-standard", shape: ShapeTRLStandard, kind: KindPreferences, plain: true,
			rows: []obj{
				{"prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "score_chosen": 9.0, "score_rejected": 1.0},
				{"prompt": "2+2=", "chosen": "4", "rejected": "5", "score_chosen": 8.0, "score_rejected": 0.5},
			},
			want: []Preference{
				{Prompt: "The sky is", Chosen: " blue.", Rejected: " green.", ScoreChosen: Float(9), ScoreRejected: Float(1)},
				{Prompt: "2+2=", Chosen: "4", Rejected: "5", ScoreChosen: Float(8), ScoreRejected: Float(0.5)},
			},
		},
		{
			// TRL's own example of an implicit prompt.
			name: "trl-implicit", shape: ShapeTRLImplicit, kind: KindPreferences, plain: true,
			rows: []obj{
				{"chosen": "The sky is blue.", "rejected": "The sky is green."},
				{"chosen": "Café au lait", "rejected": "Café noir"},
				{"chosen": "Un café noir", "rejected": "Un cafè noir"}, // é and è share their first byte
			},
			want: []Preference{
				{Prompt: "The sky is", Chosen: " blue.", Rejected: " green."},
				{Prompt: "Café", Chosen: " au lait", Rejected: " noir"},
				{Prompt: "Un caf", Chosen: "é noir", Rejected: "è noir"},
			},
		},
		{
			name: "trl-conversational", shape: ShapeTRLConversational, kind: KindPreferences,
			rows: []obj{
				{"prompt": msgs("user", "What color is the sky?"), "chosen": msgs("assistant", "It is blue."), "rejected": msgs("assistant", "It is green.")},
			},
			want: []Preference{{
				PromptMessages:   []Message{{"user", "What color is the sky?"}},
				ChosenMessages:   []Message{{"assistant", "It is blue."}},
				RejectedMessages: []Message{{"assistant", "It is green."}},
			}},
		},
		{
			name: "trl-conversational-implicit", shape: ShapeTRLConversationalImplicit, kind: KindPreferences,
			rows: []obj{
				{"chosen": msgs("system", "Be helpful.", "user", "What color is the sky?", "assistant", "It is blue."),
					"rejected": msgs("system", "Be helpful.", "user", "What color is the sky?", "assistant", "It is green.")},
			},
			want: []Preference{{
				PromptMessages:   []Message{{"system", "Be helpful."}, {"user", "What color is the sky?"}},
				ChosenMessages:   []Message{{"assistant", "It is blue."}},
				RejectedMessages: []Message{{"assistant", "It is green."}},
			}},
		},
		{
			name: "hh-rlhf", shape: ShapeHHRLHF, kind: KindPreferences, plain: true,
			rows: []obj{
				{
					"chosen":   "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: 6, since\n\n3+3 = 6.",
					"rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: I don't know.",
				},
				{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."},
			},
			want: []Preference{
				{
					PromptMessages:   []Message{{"user", "What is 2+2?"}, {"assistant", "4."}, {"user", "And 3+3?"}},
					ChosenMessages:   []Message{{"assistant", "6, since\n\n3+3 = 6."}},
					RejectedMessages: []Message{{"assistant", "I don't know."}},
				},
				{
					PromptMessages:   []Message{{"user", "Hi"}},
					ChosenMessages:   []Message{{"assistant", "Hello!"}},
					RejectedMessages: []Message{{"assistant", "Go away."}},
				},
			},
		},
		{
			name: "ultrafeedback-binarized", shape: ShapeUltraFeedback, kind: KindPreferences,
			rows: []obj{{
				"prompt":         "Name a prime.",
				"prompt_id":      "a1b2",
				"chosen":         msgs("user", "Name a prime.", "assistant", "7"),
				"rejected":       msgs("user", "Name a prime.", "assistant", "8"),
				"messages":       msgs("user", "Name a prime.", "assistant", "7"),
				"score_chosen":   9.5,
				"score_rejected": 2.0,
			}},
			want: []Preference{{
				PromptMessages:   []Message{{"user", "Name a prime."}},
				ChosenMessages:   []Message{{"assistant", "7"}},
				RejectedMessages: []Message{{"assistant", "8"}},
				ScoreChosen:      Float(9.5), ScoreRejected: Float(2),
			}},
		},
		{
			name: "prompts", shape: ShapePrompts, kind: KindPrompts, plain: true,
			rows: []obj{{"prompt": "Tell me a joke."}, {"prompt": "Why is the sea salty?"}},
			want: []Prompt{{Prompt: "Tell me a joke."}, {Prompt: "Why is the sea salty?"}},
		},
		{
			name: "prompts-conversational", shape: ShapePromptsConversational, kind: KindPrompts,
			rows: []obj{{"prompt": msgs("system", "Be terse.", "user", "Hi")}},
			want: []Prompt{{Messages: []Message{{"system", "Be terse."}, {"user", "Hi"}}}},
		},
	}
}

// readKind reads the output of an import as the rows of its kind.
func readKind(t *testing.T, kind Kind, path string) any {
	t.Helper()
	var got any
	var err error
	switch kind {
	case KindInstructions:
		got, err = ReadInstructions(path)
	case KindGeneratedInstructions:
		got, err = ReadGeneratedInstructions(path)
	case KindPreferences:
		got, err = ReadPreferences(path)
	case KindPrompts:
		got, err = ReadPrompts(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestImportShapesAndFormats(t *testing.T) {
	type format struct {
		file  string
		write func(testing.TB, string, []obj)
		plain bool // only for shapes without nested values
	}
	formats := []format{
		{"in.jsonl", writeJSONL, false},
		{"bom.jsonl", func(t testing.TB, p string, r []obj) {
			writeJSONL(t, p, r)
			b, _ := os.ReadFile(p)
			writeFile(t, p, append([]byte("\xef\xbb\xbf"), b...))
		}, false},
		{"in.jsonl.gz", writeJSONL, false},
		{"in.json", writeJSONArray, false},
		{"in.json", writeJSONL, false}, // `datasets` to_json writes JSON lines as .json
		{"in.parquet", writeParquet, false},
		{"in.arrow", writeArrowStream, false},
		{"in.csv", func(t testing.TB, p string, r []obj) { writeCSV(t, p, r, false) }, true},
		{"in.tsv", func(t testing.TB, p string, r []obj) { writeCSV(t, p, r, true) }, true},
		{"in.csv.gz", func(t testing.TB, p string, r []obj) { writeCSV(t, p, r, false) }, true},
	}
	for _, sc := range shapeCases() {
		for _, f := range formats {
			if f.plain && !sc.plain {
				continue
			}
			t.Run(sc.name+"/"+f.file, func(t *testing.T) {
				dir := t.TempDir()
				in, out := filepath.Join(dir, f.file), filepath.Join(dir, "out.arrow")
				f.write(t, in, sc.rows)
				rep, err := Import(in, out, DefaultImportOptions())
				if err != nil {
					t.Fatal(err)
				}
				if rep.Shape != sc.shape || rep.Kind != sc.kind || rep.RowsRead != len(sc.rows) || rep.RowsWritten != len(sc.rows) || rep.Rejected != 0 {
					t.Fatalf("report %+v", rep)
				}
				if got := readKind(t, sc.kind, out); !reflect.DeepEqual(got, sc.want) {
					t.Fatalf("rows\n got %+v\nwant %+v", got, sc.want)
				}
			})
		}
	}
}

func TestImportSelfInstruct(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "regen.json"), filepath.Join(dir, "gen.arrow")
	writeJSONArray(t, in, []obj{
		{"instruction": "Name a fruit.", "input": "", "output": "Pear.",
			"most_similar_instructions": obj{"Name a vegetable.": 0.5, "Name two fruits.": 0.8}, "avg_similarity_score": 0.65},
		{"instruction": "Sort the list.", "input": "3 1 2", "output": "1 2 3",
			"most_similar_instructions": []any{obj{"text": "Sort numbers.", "score": 0.7}}, "avg_similarity_score": 0.7},
	})
	rep, err := Import(in, out, DefaultImportOptions())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != KindGeneratedInstructions {
		t.Fatalf("kind %s", rep.Kind)
	}
	got, err := ReadGeneratedInstructions(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []GeneratedInstruction{
		{Instruction: Instruction{Instruction: "Name a fruit.", Output: "Pear."},
			MostSimilar: []Similar{{"Name two fruits.", 0.8}, {"Name a vegetable.", 0.5}}, AvgSimilarity: 0.65},
		{Instruction: Instruction{Instruction: "Sort the list.", Input: "3 1 2", Output: "1 2 3"},
			MostSimilar: []Similar{{"Sort numbers.", 0.7}}, AvgSimilarity: 0.7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestImportColumnMapAndKind(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "se.jsonl"), filepath.Join(dir, "out.arrow")
	// A StackExchange-paired–like layout.
	writeJSONL(t, in, []obj{
		{"question": "How do I exit vim?", "response_j": ":q", "response_k": "Reboot.", "date": "2020"},
	})
	rep, err := Import(in, out, ImportOptions{MaxRowBytes: DefaultMaxRowBytes, ColumnMap: map[string]string{"prompt": "question", "chosen": "response_j", "rejected": "response_k"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Shape != ShapeTRLStandard {
		t.Fatalf("shape %s", rep.Shape)
	}
	got, _ := ReadPreferences(out)
	if want := []Preference{{Prompt: "How do I exit vim?", Chosen: ":q", Rejected: "Reboot."}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}

	// A forced kind overrides detection: prompts from a preference file.
	writeJSONL(t, in, []obj{{"prompt": "p", "chosen": "c", "rejected": "r"}})
	rep, err = Import(in, out, ImportOptions{MaxRowBytes: DefaultMaxRowBytes, Kind: KindPrompts})
	if err != nil || rep.Shape != ShapePrompts {
		t.Fatalf("forced kind: %+v, %v", rep, err)
	}
	if got, _ := ReadPrompts(out); !reflect.DeepEqual(got, []Prompt{{Prompt: "p"}}) {
		t.Fatalf("got %+v", got)
	}
	// A forced shape too.
	writeJSONL(t, in, []obj{{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"}})
	rep, err = Import(in, out, ImportOptions{MaxRowBytes: DefaultMaxRowBytes, Shape: ShapeTRLImplicit})
	if err != nil || rep.Shape != ShapeTRLImplicit {
		t.Fatalf("forced shape: %+v, %v", rep, err)
	}
}

// TestImportErrors is the table of bad inputs and the exact error each gets.
func TestImportErrors(t *testing.T) {
	good := `{"prompt": "p", "chosen": "c", "rejected": "r"}`
	goodConv := `{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}`
	goodHH := `{"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}`
	long := strings.Repeat("x", 300)
	cases := []struct {
		name, file, content string
		opts                ImportOptions
		want                string
	}{
		{"wrong type", "bad.jsonl", good + "\n" + `{"prompt": "p", "chosen": 5, "rejected": "r"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": wrong type number, want string`},
		{"missing column", "bad.jsonl", good + "\n" + `{"prompt": "p", "chosen": "c"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "rejected": missing`},
		{"null", "bad.jsonl", good + "\n" + `{"prompt": "p", "chosen": null, "rejected": "r"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": null, want text`},
		{"empty text", "bad.jsonl", good + "\n\n" + `{"prompt": "p", "chosen": " \n ", "rejected": "r"}`, DefaultImportOptions(),
			`bad.jsonl: row 3, column "chosen": empty text`}, // row = line: the blank line counts
		{"identical", "bad.jsonl", good + "\n" + `{"prompt": "p", "chosen": "same", "rejected": "same"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "rejected": identical to chosen`},
		{"invalid utf-8", "bad.jsonl", good + "\n" + "{\"prompt\": \"p\", \"chosen\": \"ab\xffcd\", \"rejected\": \"r\"}", DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": invalid UTF-8`},
		{"oversized", "bad.jsonl", good + "\n" + `{"prompt": "p", "chosen": "` + long + `", "rejected": "r"}`, ImportOptions{MaxRowBytes: 200},
			`bad.jsonl: row 2: 346 bytes exceeds the limit of 200 bytes`},
		{"invalid json", "bad.jsonl", good + "\n" + `{"prompt": "p", "chosen": `, DefaultImportOptions(),
			`bad.jsonl: row 2: invalid JSON: unexpected end of JSON input`},
		{"not an object", "bad.jsonl", good + "\n[1, 2]", DefaultImportOptions(),
			`bad.jsonl: row 2: not a JSON object but array`},
		{"score type", "bad.jsonl", good + "\n" + `{"prompt": "p", "chosen": "c", "rejected": "r", "score_chosen": "high"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "score_chosen": wrong type string, want number`},
		{"messages role", "bad.jsonl", goodConv + "\n" + `{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": message 1: role missing or not text`},
		{"messages type", "bad.jsonl", goodConv + "\n" + `{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": wrong type string, want a list of messages`},
		{"messages empty", "bad.jsonl", goodConv + "\n" + `{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": ""}], "rejected": [{"role": "assistant", "content": "b"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": empty text`},
		{"no implicit prompt", "bad.jsonl", `{"chosen": "Yes.", "rejected": "No."}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "prompt": chosen and rejected share no prefix to use as the prompt`},
		{"implicit prefix only", "bad.jsonl", `{"chosen": "Hello", "rejected": "Hello there"}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "chosen": empty text after the shared prompt`},
		{"hh prompt mismatch", "bad.jsonl", goodHH + "\n" + `{"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: other\n\nAssistant: b"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "rejected": the turns before the last Assistant turn differ from chosen's`},
		{"hh last turn", "bad.jsonl", goodHH + "\n" + `{"chosen": "\n\nHuman: q\n\nAssistant: a\n\nHuman: more?", "rejected": "\n\nHuman: q\n\nAssistant: b"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": transcript does not end with an Assistant turn`},
		{"hh empty answer", "bad.jsonl", goodHH + "\n" + `{"chosen": "\n\nHuman: q\n\nAssistant:", "rejected": "\n\nHuman: q\n\nAssistant: b"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "chosen": empty last Assistant turn`},
		{"mapped column", "bad.jsonl", `{"question": "q", "chosen": "c", "rejected": "r"}` + "\n" + `{"chosen": "c", "rejected": "r"}`,
			ImportOptions{MaxRowBytes: DefaultMaxRowBytes, ColumnMap: map[string]string{"prompt": "question"}},
			`bad.jsonl: row 2, column "question": missing`},
		{"json array element", "bad.json", `[` + good + `, {"prompt": "p", "chosen": "", "rejected": "r"}]`, DefaultImportOptions(),
			`bad.json: row 2, column "chosen": empty text`},
		{"json array syntax", "bad.json", `[` + good + `, {"prompt": ]`, DefaultImportOptions(),
			`bad.json: row 2: invalid JSON: invalid character ']' looking for beginning of value`},
		{"csv field count", "bad.csv", "prompt,chosen,rejected\np,c,r\np,c\n", DefaultImportOptions(),
			`bad.csv: row 2: 2 fields, the header has 3`},
		{"csv invalid utf-8", "bad.csv", "prompt,chosen,rejected\np,c\xfe,r\n", DefaultImportOptions(),
			`bad.csv: row 1, column "chosen": invalid UTF-8`},
		{"csv score", "bad.csv", "prompt,chosen,rejected,margin\np,c,r,1.5\np,c,r,lots\n", DefaultImportOptions(),
			`bad.csv: row 2, column "margin": "lots" is not a number`},
		{"csv missing column", "bad.csv", "prompt,chosen\np,c\n", DefaultImportOptions(),
			`import DIR/bad.csv: missing column "rejected" for shape trl-standard (columns: prompt, chosen)`},
		{"csv column map", "bad.csv", "prompt,chosen,rejected\np,c,r\n", ImportOptions{MaxRowBytes: DefaultMaxRowBytes, ColumnMap: map[string]string{"prompt": "question"}},
			`import DIR/bad.csv: column map prompt=question: no column "question" (columns: prompt, chosen, rejected)`},
		{"column map target", "bad.jsonl", good, ImportOptions{MaxRowBytes: DefaultMaxRowBytes, ColumnMap: map[string]string{"promt": "question"}},
			`import DIR/bad.jsonl: column map promt=question: unknown gotune column "promt" (known: instruction, input, output, system, source, most_similar_instructions, avg_similarity_score, prompt, chosen, rejected, margin, score_chosen, score_rejected, ref_chosen_logps, ref_rejected_logps, messages, conversations)`},
		{"empty parquet", "bad.parquet", "", DefaultImportOptions(), "PARQUET"},
		{"unknown columns", "bad.jsonl", `{"text": "hello"}`, DefaultImportOptions(),
			`import DIR/bad.jsonl: cannot tell the dataset kind from the columns text; set the kind or a column map`},
		{"empty file", "bad.jsonl", "\n\n", DefaultImportOptions(),
			`import DIR/bad.jsonl: no rows`},
		{"unknown format", "bad.txt", "hello", DefaultImportOptions(),
			`import DIR/bad.txt: cannot tell the file format; name it with --format (jsonl, json, csv, tsv, parquet, arrow)`},
		{"messages unknown role", "bad.jsonl", `{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}` + "\n" +
			`{"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "messages": message 2: unknown role "bot" (want system, user or assistant)`},
		{"messages empty content", "bad.jsonl", `{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "messages": message 2 (assistant): empty content`},
		{"messages last turn", "bad.jsonl", `{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "more?"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "messages": the conversation ends with a user turn, not an assistant turn`},
		{"messages late system", "bad.jsonl", `{"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "messages": message 2: a system turn may only come first`},
		{"messages no user", "bad.jsonl", `{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "messages": no user turn`},
		{"sharegpt unknown from", "bad.jsonl", `{"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "a"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "conversations": turn 2: unknown from "function_call" (want human, gpt or system)`},
		{"sharegpt value", "bad.jsonl", `{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "conversations": turn 2: value missing or not text`},
		{"alpaca missing output", "bad.jsonl", `{"instruction": "i", "input": "", "output": "o"}` + "\n" + `{"instruction": "i", "input": "x"}`, DefaultImportOptions(),
			`bad.jsonl: row 2, column "output": missing`},
		{"alpaca input type", "bad.jsonl", `{"instruction": "i", "input": ["x"], "output": "o"}`, DefaultImportOptions(),
			`bad.jsonl: row 1, column "input": wrong type array, want string`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in, out := filepath.Join(dir, c.file), filepath.Join(dir, "out.arrow")
			writeFile(t, in, []byte(c.content))
			if c.want == "PARQUET" { // a Parquet file with a schema and no rows
				c.want = "import DIR/bad.parquet: no rows"
				rec := recordOf(t, []obj{{"prompt": "p"}})
				empty := rec.NewSlice(0, 0)
				writeParquetRecord(t, in, empty)
				rec.Release()
				empty.Release()
			}
			_, err := Import(in, out, c.opts)
			if err == nil {
				t.Fatalf("no error, want %s", c.want)
			}
			got := strings.ReplaceAll(err.Error(), dir, "DIR")
			got = strings.TrimPrefix(got, "DIR/")
			if got != c.want {
				t.Fatalf("error\n got %s\nwant %s", got, c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatal("a failed import left its output behind")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Fatalf("a failed import left %d files", len(entries)-1)
			}
		})
	}
}

// TestImportArrowTypeErrors checks type errors from typed (Parquet) input.
func TestImportArrowTypeErrors(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "bad.parquet"), filepath.Join(dir, "out.arrow")
	writeParquet(t, in, []obj{{"prompt": "p", "chosen": "c", "rejected": 3.0}})
	_, err := Import(in, out, DefaultImportOptions())
	want := in + `: row 1, column "rejected": wrong type number, want string`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestImportSkipInvalid(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "prefs.jsonl"), filepath.Join(dir, "prefs.arrow")
	lines := []string{
		`{"prompt": "p1", "chosen": "c1", "rejected": "r1"}`,
		`{"prompt": "p2", "chosen": "same", "rejected": "same"}`,
		`{"prompt": "p3", "chosen": "c3"}`,
		`not json`,
		`{"prompt": "p5", "chosen": "c5", "rejected": "r5", "margin": 2}`,
		`{"prompt": "p6", "chosen": "", "rejected": "r6"}`,
		"{\"prompt\": \"p7\", \"chosen\": \"\xc3\", \"rejected\": \"r7\"}",
		`{"prompt": "p8", "chosen": "c8", "rejected": "r8"}`,
	}
	writeFile(t, in, []byte(strings.Join(lines, "\n")))
	rep, err := Import(in, out, ImportOptions{MaxRowBytes: DefaultMaxRowBytes, SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	wantReasons := map[string]int{ReasonIdentical: 1, ReasonMissing: 1, ReasonInvalidJSON: 1, ReasonEmpty: 1, ReasonInvalidUTF8: 1}
	if rep.RowsRead != 8 || rep.RowsWritten != 3 || rep.Rejected != 5 || !reflect.DeepEqual(rep.Reasons, wantReasons) {
		t.Fatalf("report %+v", rep)
	}
	if rep.RejectsPath != out+".rejects.jsonl" {
		t.Fatalf("rejects path %s", rep.RejectsPath)
	}
	got, _ := ReadPreferences(out)
	want := []Preference{{Prompt: "p1", Chosen: "c1", Rejected: "r1"}, {Prompt: "p5", Chosen: "c5", Rejected: "r5", Margin: Float(2)}, {Prompt: "p8", Chosen: "c8", Rejected: "r8"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %+v", got)
	}
	if !reflect.DeepEqual(rep.Columns, []string{"prompt", "chosen", "rejected", "margin"}) {
		t.Fatalf("columns %v", rep.Columns)
	}
	f, err := os.Open(rep.RejectsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rejects []rejectLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r rejectLine
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("rejects line %q: %v", sc.Text(), err)
		}
		rejects = append(rejects, r)
	}
	wantRejects := []rejectLine{
		{Row: 2, Column: "rejected", Reason: ReasonIdentical, Error: in + `: row 2, column "rejected": identical to chosen`, Raw: lines[1]},
		{Row: 3, Column: "rejected", Reason: ReasonMissing, Error: in + `: row 3, column "rejected": missing`, Raw: lines[2]},
		{Row: 4, Reason: ReasonInvalidJSON, Error: in + `: row 4: invalid JSON: invalid character 'o' in literal null (expecting 'u')`, Raw: lines[3]},
		{Row: 6, Column: "chosen", Reason: ReasonEmpty, Error: in + `: row 6, column "chosen": empty text`, Raw: lines[5]},
		{Row: 7, Column: "chosen", Reason: ReasonInvalidUTF8, Error: in + `: row 7, column "chosen": invalid UTF-8`, Raw: strings.ToValidUTF8(lines[6], "\ufffd")},
	}
	if !reflect.DeepEqual(rejects, wantRejects) {
		t.Fatalf("rejects\n got %+v\nwant %+v", rejects, wantRejects)
	}

	// Every row invalid: no output, but the reasons are kept.
	writeFile(t, in, []byte(lines[1]+"\n"+lines[2]+"\n"))
	os.Remove(out)
	_, err = Import(in, out, ImportOptions{MaxRowBytes: DefaultMaxRowBytes, SkipInvalid: true, RejectsPath: filepath.Join(dir, "why.jsonl")})
	if err == nil || !strings.Contains(err.Error(), "no valid rows (2 rejected") {
		t.Fatalf("all invalid: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("output written with no valid rows")
	}
	if _, err := os.Stat(filepath.Join(dir, "why.jsonl")); err != nil {
		t.Fatal("rejects file missing")
	}
}

func TestImportCancelledWritesNothing(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.arrow")
	writeJSONL(t, in, []obj{{"prompt": "hello"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ImportContext(ctx, in, out, DefaultImportOptions())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("cancelled import left %d files", len(entries)-1)
	}
}

func TestImportLongLines(t *testing.T) {
	// Lines longer than the reader's buffer, and a too-long line in the
	// middle that must be skipped to its end.
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.arrow")
	big := strings.Repeat("ab", 1<<20) // 2 MiB
	huge := strings.Repeat("z", 5<<20)
	content := `{"prompt": "` + big + `"}` + "\r\n" + `{"prompt": "` + huge + `"}` + "\n" + `{"prompt": "end"}`
	writeFile(t, in, []byte(content))
	rep, err := Import(in, out, ImportOptions{SkipInvalid: true, MaxRowBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RowsWritten != 2 || rep.Rejected != 1 || rep.Reasons[ReasonTooLarge] != 1 {
		t.Fatalf("report %+v", rep)
	}
	got, _ := ReadPrompts(out)
	if len(got) != 2 || got[0].Prompt != big || got[1].Prompt != "end" {
		t.Fatalf("got %d rows", len(got))
	}
}

func TestImportSkipInvalidCSV(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "prefs.csv"), filepath.Join(dir, "prefs.arrow")
	writeFile(t, in, []byte("prompt,chosen,rejected\np,c,r\n\"q, with comma\",same,same\nshort,row\n"))
	rep, err := Import(in, out, ImportOptions{MaxRowBytes: DefaultMaxRowBytes, SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RowsWritten != 1 || rep.Rejected != 2 || rep.Reasons[ReasonIdentical] != 1 || rep.Reasons[ReasonFieldCount] != 1 {
		t.Fatalf("report %+v", rep)
	}
	raw, _ := os.ReadFile(rep.RejectsPath)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var first, second rejectLine
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first.Raw != `"q, with comma",same,same` || first.Row != 2 || second.Raw != "short,row" || second.Row != 3 {
		t.Fatalf("rejects %+v %+v", first, second)
	}
}

// TestImportOptionsValidate: every invalid option stops the import before
// anything is read or written, with an error naming its key.
func TestImportOptionsValidate(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.arrow")
	writeFile(t, in, []byte(`{"prompt": "p", "chosen": "c", "rejected": "r"}`))
	importErr := func(o ImportOptions) error {
		_, err := Import(in, out, o)
		if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
			t.Fatalf("%+v: an invalid import wrote %s", o, out)
		}
		return err
	}
	configtest.Check(t, DefaultImportOptions(), ImportOptions.Validate, importErr, []configtest.Case[ImportOptions]{
		{Key: KeyImportKind, Edit: func(o *ImportOptions) { o.Kind = "pairs" }},
		{Key: KeyImportShape, Edit: func(o *ImportOptions) { o.Shape = "trl" }},
		{Key: KeyImportFormat, Edit: func(o *ImportOptions) { o.Format = "xml" }},
		{Key: KeyImportRejects, Edit: func(o *ImportOptions) { o.RejectsPath = "why.jsonl" }},
		{Key: KeyImportMaxRowBytes, Edit: func(o *ImportOptions) { o.MaxRowBytes = 0 }},
		{Key: KeyImportMaxRowBytes, Edit: func(o *ImportOptions) { o.MaxRowBytes = -1 }},
	})
}
