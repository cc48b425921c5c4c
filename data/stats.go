package data

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// NearestRank is the p-th percentile (0 < p ≤ 100) of sorted values by the
// nearest-rank method: the smallest value with at least p % of the values
// at or below it. sorted must be non-empty and ascending.
func NearestRank[T cmp.Ordered](sorted []T, p float64) T {
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// LengthStats summarises a distribution of lengths.
type LengthStats struct {
	Count         int
	Min, Max      int
	Mean          float64
	P50, P90, P99 int
	Histogram     []HistogramBin // power-of-two bins from the first used to the last used

	lengths   []int32
	sum       float64
	finalized bool
}

// HistogramBin counts lengths in [Lo, Hi).
type HistogramBin struct {
	Lo, Hi int
	Count  int
}

func (s *LengthStats) add(n int) {
	s.lengths = append(s.lengths, int32(min(n, math.MaxInt32)))
	s.sum += float64(n)
}

// finish computes the summary from the collected lengths.
func (s *LengthStats) finish() {
	if s.finalized {
		return
	}
	s.finalized = true
	s.Count = len(s.lengths)
	if s.Count == 0 {
		return
	}
	sort.Slice(s.lengths, func(i, j int) bool { return s.lengths[i] < s.lengths[j] })
	s.Min, s.Max = int(s.lengths[0]), int(s.lengths[s.Count-1])
	s.Mean = s.sum / float64(s.Count)
	pct := func(p float64) int { return int(NearestRank(s.lengths, p)) }
	s.P50, s.P90, s.P99 = pct(50), pct(90), pct(99)
	// Bins [0,1), [1,2), [2,4), [4,8), ... up to the one holding Max.
	lo := 0
	for hi := 1; ; hi *= 2 {
		s.Histogram = append(s.Histogram, HistogramBin{Lo: lo, Hi: hi})
		if hi > s.Max {
			break
		}
		lo = hi
	}
	bin := 0
	for _, n := range s.lengths { // sorted
		for int(n) >= s.Histogram[bin].Hi {
			bin++
		}
		s.Histogram[bin].Count++
	}
	// Trim empty bins at both ends.
	first, last := 0, len(s.Histogram)-1
	for s.Histogram[first].Count == 0 {
		first++
	}
	for s.Histogram[last].Count == 0 {
		last--
	}
	s.Histogram = s.Histogram[first : last+1]
	s.lengths = nil
}

// Stats describes a dataset.
type Stats struct {
	Path    string
	Kind    Kind
	Rows    int
	Columns []string // "name: type"
	Unit    string   // what lengths count: "tokens", or "bytes" without a tokenizer

	// Prompt and completion lengths (instructions: system + instruction +
	// input, and output; preferences: prompt, and chosen; prompts: prompt).
	Prompt, Completion LengthStats
	// Rejected answer lengths (preferences only).
	Rejected *LengthStats
}

// StatsOptions steers ComputeStats.
type StatsOptions struct {
	// Count returns the length of a text; nil counts bytes. Conversational
	// texts are measured as their message contents joined by newlines,
	// without any chat template.
	Count func(text string) int
	Unit  string // name of what Count counts ("tokens" when Count is set and Unit empty)
}

// ComputeStats reads the dataset at path once, one record batch at a time.
func ComputeStats(path string, opts StatsOptions) (*Stats, error) {
	d, err := OpenDataset(path)
	if err != nil {
		return nil, err
	}
	sc := d.Schema()
	d.Close()
	kind, err := DetectKind(sc)
	if err != nil {
		return nil, fmt.Errorf("stats %s: %w", path, err)
	}
	st := &Stats{Path: path, Kind: kind, Unit: opts.Unit}
	for _, f := range sc.Fields() {
		st.Columns = append(st.Columns, f.Name+": "+f.Type.String())
	}
	count := opts.Count
	if count == nil {
		count = func(s string) int { return len(s) }
		st.Unit = "bytes"
	} else if st.Unit == "" {
		st.Unit = "tokens"
	}
	measure := func(prompt, completion string) {
		st.Rows++
		st.Prompt.add(count(prompt))
		st.Completion.add(count(completion))
	}
	switch kind {
	case KindInstructions, KindGeneratedInstructions:
		err = StreamInstructions(path, func(_ int, r Instruction) error {
			if r.Conversational() {
				// The completion is every assistant turn; the prompt the rest.
				var prompt, completion []Message
				for _, m := range r.Messages {
					if m.Role == RoleAssistant {
						completion = append(completion, m)
					} else {
						prompt = append(prompt, m)
					}
				}
				measure(JoinContents(prompt), JoinContents(completion))
				return nil
			}
			measure(joinNonEmpty(r.System, r.Instruction, r.Input), r.Output)
			return nil
		})
	case KindPreferences:
		st.Rejected = &LengthStats{}
		err = StreamPreferences(path, func(_ int, p Preference) error {
			if p.Conversational() {
				measure(JoinContents(p.PromptMessages), JoinContents(p.ChosenMessages))
				st.Rejected.add(count(JoinContents(p.RejectedMessages)))
			} else {
				measure(p.Prompt, p.Chosen)
				st.Rejected.add(count(p.Rejected))
			}
			return nil
		})
	case KindPrompts:
		err = StreamPrompts(path, func(_ int, p Prompt) error {
			st.Rows++
			if p.Conversational() {
				st.Prompt.add(count(JoinContents(p.Messages)))
			} else {
				st.Prompt.add(count(p.Prompt))
			}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	st.Prompt.finish()
	st.Completion.finish()
	if st.Rejected != nil {
		st.Rejected.finish()
	}
	return st, nil
}

func joinNonEmpty(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "\n")
}

// WriteText prints the statistics for people, with a bar chart per histogram.
func (s *Stats) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, %d rows\n", s.Path, s.Kind, s.Rows)
	fmt.Fprintf(&b, "columns: %s\n", strings.Join(s.Columns, ", "))
	section := func(name string, l *LengthStats) {
		if l.Count == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s length (%s): min %d, mean %.1f, p50 %d, p90 %d, p99 %d, max %d\n",
			name, s.Unit, l.Min, l.Mean, l.P50, l.P90, l.P99, l.Max)
		peak := 0
		for _, h := range l.Histogram {
			peak = max(peak, h.Count)
		}
		for _, h := range l.Histogram {
			bar := strings.Repeat("#", int(math.Ceil(40*float64(h.Count)/float64(peak))))
			fmt.Fprintf(&b, "  [%6d, %6d) %8d %s\n", h.Lo, h.Hi, h.Count, bar)
		}
	}
	section("prompt", &s.Prompt)
	if s.Kind == KindPreferences {
		section("chosen", &s.Completion)
		section("rejected", s.Rejected)
	} else {
		section("completion", &s.Completion)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Head writes the first n rows of any Arrow dataset to w as JSON lines, one
// object per row with the columns in schema order. A negative n is an
// error; zero writes nothing.
func Head(path string, n int, w io.Writer) error {
	if n < 0 {
		return fmt.Errorf("head %s: %d rows: the number of rows must not be negative", path, n)
	}
	if n == 0 {
		return nil
	}
	d, err := OpenDataset(path)
	if err != nil {
		return err
	}
	defer d.Close()
	names := fieldNames(d.Schema())
	done := 0
	for done < n {
		rec, err := d.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for i := 0; i < int(rec.NumRows()) && done < n; i++ {
			if err := writeRowJSON(w, names, rec, i); err != nil {
				return err
			}
			done++
		}
	}
	return nil
}

// writeRowJSON writes row i of rec as one JSON object, keys in column order.
func writeRowJSON(w io.Writer, names []string, rec arrow.RecordBatch, i int) error {
	var b bytes.Buffer
	b.WriteByte('{')
	for c, name := range names {
		if c > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		appendJSON(&b, rec.Column(c), i)
	}
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

// appendJSON writes element i of arr as JSON, struct fields in schema order.
func appendJSON(b *bytes.Buffer, arr arrow.Array, i int) {
	if arr.IsNull(i) {
		b.WriteString("null")
		return
	}
	switch a := arr.(type) {
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		b.WriteByte('{')
		for f := 0; f < st.NumFields(); f++ {
			if f > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(st.Field(f).Name)
			b.Write(k)
			b.WriteByte(':')
			appendJSON(b, a.Field(f), i)
		}
		b.WriteByte('}')
		return
	case array.ListLike:
		start, end := a.ValueOffsets(i)
		b.WriteByte('[')
		for j := start; j < end; j++ {
			if j > start {
				b.WriteByte(',')
			}
			appendJSON(b, a.ListValues(), int(j))
		}
		b.WriteByte(']')
		return
	}
	size := 0
	v := arrowValue(arr, i, &size)
	if o, ok := v.(arrowOpaque); ok {
		v = arr.ValueStr(i) + " (" + o.typ + ")"
	}
	js, err := json.Marshal(v)
	if err != nil { // NaN and infinities have no JSON spelling
		js, _ = json.Marshal(fmt.Sprint(v))
	}
	b.Write(js)
}
