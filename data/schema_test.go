package data

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func sampleInstructions() []Instruction {
	return []Instruction{
		{Instruction: "Add 2 and 3.", Output: "5"},
		{Instruction: "Translate to French.", Input: "cheese", Output: "fromage", System: "Be brief.", Source: "seed"},
		{Instruction: "Ünïcödé 🙂", Input: "", Output: "ok\nwith newline"},
	}
}

func samplePreferences() []Preference {
	return []Preference{
		{Prompt: "Sky colour?", Chosen: "Blue.", Rejected: "Green.", ScoreChosen: Float(8), ScoreRejected: Float(2.5)},
		{Prompt: "2+2?", Chosen: "4", Rejected: "5", Margin: Float(1), RefChosenLogp: Float(-3.25), RefRejectedLogp: Float(-7)},
	}
}

func sampleConversational() []Preference {
	return []Preference{
		{
			PromptMessages:   []Message{{"system", "Be kind."}, {"user", "Hi"}},
			ChosenMessages:   []Message{{"assistant", "Hello!"}},
			RejectedMessages: []Message{{"assistant", "Go away."}},
		},
		{
			PromptMessages:   []Message{{"user", "Name a colour"}},
			ChosenMessages:   []Message{{"assistant", "Red"}},
			RejectedMessages: []Message{{"assistant", ""}},
			ScoreChosen:      Float(9), ScoreRejected: Float(1),
		},
	}
}

func sampleGenerated() []GeneratedInstruction {
	return []GeneratedInstruction{
		{Instruction: Instruction{Instruction: "List three fruits.", Output: "apple, pear, fig"},
			MostSimilar: []Similar{{"List two fruits.", 0.8}, {"Name a fruit.", 0.5}}, AvgSimilarity: 0.65},
		{Instruction: Instruction{Instruction: "Write a haiku.", Input: "autumn", Output: "leaves fall"}, AvgSimilarity: 0.1},
	}
}

// readSchema returns the schema of the IPC stream at path.
func readSchema(t *testing.T, path string) *arrow.Schema {
	t.Helper()
	d, err := OpenDataset(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return d.Schema()
}

// hfFeatures returns the "huggingface" metadata value of the schema.
func hfFeatures(t *testing.T, sc *arrow.Schema) string {
	t.Helper()
	md := sc.Metadata()
	i := md.FindKey("huggingface")
	if i < 0 {
		t.Fatalf("no huggingface metadata in %v", sc)
	}
	return md.Values()[i]
}

// roundTrip writes rows to a file of the given name in a temporary
// directory, reads them back, requires them unchanged and returns the path.
func roundTrip[R any](t *testing.T, name string, rows []R, write func(string, []R) error, read func(string) ([]R, error)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := write(path, rows); err != nil {
		t.Fatal(err)
	}
	got, err := read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, rows)
	}
	return path
}

func TestRoundTripInstructions(t *testing.T) {
	path := roundTrip(t, "sft.arrow", sampleInstructions(), WriteInstructions, ReadInstructions)
	want := `{"info": {"features": {"instruction": {"dtype": "string", "_type": "Value"}, ` +
		`"input": {"dtype": "string", "_type": "Value"}, "output": {"dtype": "string", "_type": "Value"}, ` +
		`"system": {"dtype": "string", "_type": "Value"}, "source": {"dtype": "string", "_type": "Value"}}}}`
	if got := hfFeatures(t, readSchema(t, path)); got != want {
		t.Fatalf("huggingface metadata\n got %s\nwant %s", got, want)
	}
}

func TestOptionalColumnsOnlyWhenUsed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sft.arrow")
	if err := WriteInstructions(path, sampleInstructions()[:1]); err != nil {
		t.Fatal(err)
	}
	if got := fieldNames(readSchema(t, path)); !reflect.DeepEqual(got, []string{"instruction", "input", "output"}) {
		t.Fatalf("columns %v", got)
	}
	path = filepath.Join(t.TempDir(), "prefs.arrow")
	rows := []Preference{{Prompt: "p", Chosen: "a", Rejected: "b"}}
	if err := WritePreferences(path, rows); err != nil {
		t.Fatal(err)
	}
	if got := fieldNames(readSchema(t, path)); !reflect.DeepEqual(got, []string{"prompt", "chosen", "rejected"}) {
		t.Fatalf("columns %v", got)
	}
}

func TestRoundTripPreferences(t *testing.T) {
	path := roundTrip(t, "prefs.arrow", samplePreferences(), WritePreferences, ReadPreferences)
	sc := readSchema(t, path)
	wantCols := []string{"prompt", "chosen", "rejected", "margin", "score_chosen", "score_rejected", "ref_chosen_logps", "ref_rejected_logps"}
	if !reflect.DeepEqual(fieldNames(sc), wantCols) {
		t.Fatalf("columns %v, want %v", fieldNames(sc), wantCols)
	}
	if !strings.Contains(hfFeatures(t, sc), `"ref_rejected_logps": {"dtype": "float64", "_type": "Value"}`) {
		t.Fatalf("float feature missing: %s", hfFeatures(t, sc))
	}
}

func TestRoundTripConversationalPreferences(t *testing.T) {
	path := roundTrip(t, "prefs.arrow", sampleConversational(), WritePreferences, ReadPreferences)
	sc := readSchema(t, path)
	if typ := sc.Field(1).Type.String(); typ != "list<item: struct<role: utf8 nullable, content: utf8 nullable>, nullable>" {
		t.Fatalf("chosen type %s", typ)
	}
	msgs := `[{"role": {"dtype": "string", "_type": "Value"}, "content": {"dtype": "string", "_type": "Value"}}]`
	want := `{"info": {"features": {"prompt": ` + msgs + `, "chosen": ` + msgs + `, "rejected": ` + msgs +
		`, "score_chosen": {"dtype": "float64", "_type": "Value"}, "score_rejected": {"dtype": "float64", "_type": "Value"}}}}`
	if got := hfFeatures(t, sc); got != want {
		t.Fatalf("huggingface metadata\n got %s\nwant %s", got, want)
	}
}

func TestRoundTripPrompts(t *testing.T) {
	for name, rows := range map[string][]Prompt{
		"plain":          {{Prompt: "Tell a joke."}, {Prompt: "Why is the sky blue?"}},
		"conversational": {{Messages: []Message{{"user", "Hi"}}}, {Messages: []Message{{"system", "S"}, {"user", "Q"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			roundTrip(t, "prompts.arrow", rows, WritePrompts, ReadPrompts)
		})
	}
}

func TestRoundTripGeneratedInstructions(t *testing.T) {
	path := roundTrip(t, "gen.arrow", sampleGenerated(), WriteGeneratedInstructions, ReadGeneratedInstructions)
	feats := hfFeatures(t, readSchema(t, path))
	want := `"most_similar_instructions": [{"text": {"dtype": "string", "_type": "Value"}, "score": {"dtype": "float64", "_type": "Value"}}], "avg_similarity_score": {"dtype": "float64", "_type": "Value"}}}}`
	if !strings.HasSuffix(feats, want) {
		t.Fatalf("features %s\nwant suffix %s", feats, want)
	}
}

func TestMixedFormsRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prefs.arrow")
	rows := append(samplePreferences(), sampleConversational()[0])
	err := WritePreferences(path, rows)
	if err == nil || !strings.Contains(err.Error(), "row 2 is conversational") {
		t.Fatalf("want mixed-form error naming row 2, got %v", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Fatalf("a failed write left %s behind", path)
	}
}

// TestStreamFormat checks what Hugging Face `datasets` needs to open a file
// with Dataset.from_file: the IPC stream format (pa.ipc.open_stream), not
// the file format, with features whose Arrow schema equals the file's
// (every field nullable, list children named "item").
func TestStreamFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prefs.arrow")
	if err := WritePreferences(path, sampleConversational()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(raw, []byte("ARROW1")) {
		t.Fatal("file starts with the IPC file magic; datasets reads streams")
	}
	if !bytes.HasPrefix(raw, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Fatalf("file does not start with an IPC stream continuation marker: % x", raw[:8])
	}
	if !bytes.HasSuffix(raw, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}) {
		t.Fatal("stream lacks its end-of-stream marker")
	}
	r, err := ipc.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ipc stream reader: %v", err)
	}
	defer r.Release()
	for _, f := range r.Schema().Fields() {
		if !f.Nullable {
			t.Errorf("field %s not nullable", f.Name)
		}
		if lt, ok := f.Type.(*arrow.ListType); ok && (lt.ElemField().Name != "item" || !lt.ElemField().Nullable) {
			t.Errorf("field %s: list child %+v, want nullable \"item\"", f.Name, lt.ElemField())
		}
	}
	var meta struct {
		Info struct {
			Features map[string]json.RawMessage `json:"features"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(hfFeatures(t, r.Schema())), &meta); err != nil {
		t.Fatal(err)
	}
	var chosen []map[string]struct {
		Dtype string `json:"dtype"`
		Type  string `json:"_type"`
	}
	if err := json.Unmarshal(meta.Info.Features["chosen"], &chosen); err != nil || len(chosen) != 1 {
		t.Fatalf("chosen feature %s: want a one-element list (%v)", meta.Info.Features["chosen"], err)
	}
	if c := chosen[0]["content"]; c.Dtype != "string" || c.Type != "Value" {
		t.Fatalf("content feature %+v", c)
	}
}

// writeIPCFile writes rows of the instruction schema in the IPC file format.
func writeIPCFile(t *testing.T, path string, rows []Instruction) {
	t.Helper()
	sc := schemaOf(instructionColumns()[:3])
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(sc))
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	cols := instructionColumns()[:3]
	for i := range rows {
		for c := range cols {
			cols[c].appendTo(b.Field(c), &rows[i])
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReadIPCFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file.arrow")
	rows := []Instruction{{Instruction: "a", Input: "b", Output: "c"}, {Instruction: "d", Output: "e"}}
	writeIPCFile(t, path, rows)
	got, err := ReadInstructions(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("got %+v", got)
	}
}

func TestReadShardDirectory(t *testing.T) {
	all := sampleInstructions()[:2]
	all[1].System, all[1].Source = "", "" // shards must share one schema
	dir := t.TempDir()
	// save_to_disk names shards data-0000i-of-0000n.arrow.
	for i, r := range all {
		name := filepath.Join(dir, "data-0000"+string(rune('0'+i))+"-of-00002.arrow")
		if err := WriteInstructions(name, []Instruction{r}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadInstructions(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, all) {
		t.Fatalf("sorted shards: got %+v", got)
	}
	// state.json decides the order when present.
	state := `{"_data_files": [{"filename": "data-00001-of-00002.arrow"}, {"filename": "data-00000-of-00002.arrow"}]}`
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = ReadInstructions(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Instruction{all[1], all[0]}) {
		t.Fatalf("state.json order: got %+v", got)
	}
	// Shards with different schemas are an error naming the shard.
	if err := WritePreferences(filepath.Join(dir, "data-00002-of-00002.arrow"), samplePreferences()); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "state.json"))
	if _, err := ReadInstructions(dir); err == nil || !strings.Contains(err.Error(), "data-00002-of-00002.arrow has schema") {
		t.Fatalf("want schema mismatch error, got %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.arrow")
	os.WriteFile(garbage, []byte("this is not arrow at all"), 0o644)
	if _, err := ReadInstructions(garbage); err == nil || !strings.Contains(err.Error(), "not an Arrow IPC stream or file") {
		t.Fatalf("garbage: %v", err)
	}
	prefs := filepath.Join(dir, "prefs.arrow")
	if err := WritePreferences(prefs, samplePreferences()); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInstructions(prefs); err == nil || !strings.Contains(err.Error(), `missing column "instruction" (columns: prompt, chosen`) {
		t.Fatalf("wrong kind: %v", err)
	}
	// A truncated stream is an error, not a panic or a silent short read.
	raw, _ := os.ReadFile(prefs)
	cut := filepath.Join(dir, "cut.arrow")
	os.WriteFile(cut, raw[:len(raw)*2/3], 0o644)
	if _, err := ReadPreferences(cut); err == nil {
		t.Fatal("truncated stream read without error")
	}
	// A column of the wrong type is named.
	gen := filepath.Join(dir, "gen.arrow")
	if err := WriteGeneratedInstructions(gen, sampleGenerated()); err != nil {
		t.Fatal(err)
	}
	if err := AddFloat64Columns(gen, gen, map[string][]float64{"output": {1, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInstructions(gen); err == nil || !strings.Contains(err.Error(), `column "output" has type float64, want string`) {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestAtomicWriteLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sft.arrow")
	if err := WriteInstructions(path, sampleInstructions()); err != nil {
		t.Fatal(err)
	}
	// A failing write (mixed forms) must leave the earlier file intact.
	before, _ := os.ReadFile(path)
	if err := WritePreferences(path, append(samplePreferences(), sampleConversational()...)); err == nil {
		t.Fatal("mixed write succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("failed write changed the existing file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only sft.arrow", names)
	}
}

func TestAddFloat64Columns(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "prefs.arrow")
	rows := sampleConversational()
	rows[0].ScoreChosen, rows[0].ScoreRejected = Float(3), Float(1) // every row scored
	if err := WritePreferences(in, rows); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prefs_ref.arrow")
	err := AddFloat64Columns(in, out, map[string][]float64{
		ColRefChosenLogps:   {-1.5, -2.5},
		ColRefRejectedLogps: {-3.5, -4.5},
		ColScoreChosen:      {7, 8}, // replaces in place
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadPreferences(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ rc, rr, sc float64 }{{-1.5, -3.5, 7}, {-2.5, -4.5, 8}} {
		p := got[i]
		if *p.RefChosenLogp != want.rc || *p.RefRejectedLogp != want.rr || *p.ScoreChosen != want.sc {
			t.Fatalf("row %d: %+v", i, p)
		}
		if !reflect.DeepEqual(p.ChosenMessages, rows[i].ChosenMessages) || *p.ScoreRejected != *rows[i].ScoreRejected {
			t.Fatalf("row %d: other columns changed: %+v", i, p)
		}
	}
	sc := readSchema(t, out)
	wantCols := []string{"prompt", "chosen", "rejected", "score_chosen", "score_rejected", "ref_chosen_logps", "ref_rejected_logps"}
	if !reflect.DeepEqual(fieldNames(sc), wantCols) {
		t.Fatalf("columns %v", fieldNames(sc))
	}
	feats := hfFeatures(t, sc)
	if !strings.HasPrefix(feats, `{"info": {"features": {"prompt": [{"role": {"dtype": "string", "_type": "Value"}`) ||
		!strings.HasSuffix(feats, `"ref_rejected_logps": {"dtype": "float64", "_type": "Value"}}}}`) {
		t.Fatalf("features %s", feats)
	}

	// In place, and with a wrong length (which must leave the file as it was).
	if err := AddFloat64Columns(out, out, map[string][]float64{ColMargin: {0.5, 0.25}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(out)
	err = AddFloat64Columns(out, out, map[string][]float64{ColMargin: {1, 2, 3}})
	if err == nil || !strings.Contains(err.Error(), `column "margin" has 3 values for 2 rows`) {
		t.Fatalf("want length error, got %v", err)
	}
	after, _ := os.ReadFile(out)
	if !bytes.Equal(before, after) {
		t.Fatal("failed AddFloat64Columns changed the file")
	}
	got, _ = ReadPreferences(out)
	if *got[1].Margin != 0.25 {
		t.Fatalf("margin %v", *got[1].Margin)
	}
}

// TestManyBatches crosses the writer's record batch boundary.
func TestManyBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.arrow")
	rows := make([]Prompt, 2*writerBatchRows+7)
	for i := range rows {
		rows[i].Prompt = strings.Repeat("x", i%13+1)
	}
	if err := WritePrompts(path, rows); err != nil {
		t.Fatal(err)
	}
	var seen int
	err := StreamPrompts(path, func(row int, p Prompt) error {
		if row != seen || p.Prompt != rows[row].Prompt {
			t.Fatalf("row %d (seen %d): %q", row, seen, p.Prompt)
		}
		seen++
		return nil
	})
	if err != nil || seen != len(rows) {
		t.Fatalf("streamed %d rows, err %v", seen, err)
	}
	if n, err := CountRows(path); err != nil || n != len(rows) {
		t.Fatalf("CountRows = %d, %v", n, err)
	}
}

// TestForeignFile reads a file laid out as other writers do (large_string
// text, an extra ClassLabel column, a `datasets` fingerprint) and checks
// that AddFloat64Columns keeps the features it does not understand.
func TestForeignFile(t *testing.T) {
	meta := `{"info": {"features": {"instruction": {"dtype": "large_string", "_type": "Value"}, ` +
		`"output": {"dtype": "large_string", "_type": "Value"}, "label": {"names": ["neg", "pos"], "_type": "ClassLabel"}}}, "fingerprint": "abc"}`
	md := arrow.NewMetadata([]string{"huggingface", "other"}, []string{meta, "kept"})
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "instruction", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "output", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, &md)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Field(0).(*array.LargeStringBuilder).AppendValues([]string{"Say hi.", "Say bye."}, nil)
	b.Field(1).(*array.LargeStringBuilder).AppendValues([]string{"hi", ""}, []bool{true, false})
	b.Field(2).(*array.Int64Builder).AppendValues([]int64{1, 0}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(t.TempDir(), "foreign.arrow")
	os.WriteFile(path, buf.Bytes(), 0o644)

	got, err := ReadInstructions(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Instruction{{Instruction: "Say hi.", Output: "hi"}, {Instruction: "Say bye."}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if err := AddFloat64Columns(path, path, map[string][]float64{"reward": {0.5, -0.5}}); err != nil {
		t.Fatal(err)
	}
	out := readSchema(t, path)
	want := `{"info": {"features": {"instruction": {"dtype": "large_string", "_type": "Value"}, ` +
		`"output": {"dtype": "large_string", "_type": "Value"}, "label": {"names": ["neg", "pos"], "_type": "ClassLabel"}, ` +
		`"reward": {"dtype": "float64", "_type": "Value"}}}}`
	if got := hfFeatures(t, out); got != want {
		t.Fatalf("features\n got %s\nwant %s", got, want)
	}
	if i := out.Metadata().FindKey("other"); i < 0 || out.Metadata().Values()[i] != "kept" {
		t.Fatal("other metadata lost")
	}
}
