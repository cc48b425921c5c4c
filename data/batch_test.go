package data

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

// ex builds an example with prompt tokens p and completion tokens c.
func ex(row int, p, c []int) Example {
	e := Example{Row: row}
	for _, id := range p {
		e.IDs = append(e.IDs, id)
		e.Mask = append(e.Mask, false)
	}
	for _, id := range c {
		e.IDs = append(e.IDs, id)
		e.Mask = append(e.Mask, true)
	}
	return e
}

func TestCollateLayout(t *testing.T) {
	// Row 0: prompt 10 11, completion 12 13; row 1: prompt 20, completion 21.
	b := Collate([]Example{ex(7, []int{10, 11}, []int{12, 13}), ex(9, []int{20}, []int{21})}, 5, 0)
	if b.B != 2 || b.T != 5 {
		t.Fatalf("shape %dx%d", b.B, b.T)
	}
	wantIn := []int32{10, 11, 12, 13, 0, 20, 21, 0, 0, 0}
	wantTgt := []int32{11, 12, 13, 0, 0, 21, 0, 0, 0, 0}
	// Position t is weighted when token t+1 is a completion token.
	wantW := []float32{0, 1, 1, 0, 0, 1, 0, 0, 0, 0}
	if !reflect.DeepEqual(b.Inputs, wantIn) || !reflect.DeepEqual(b.Targets, wantTgt) || !reflect.DeepEqual(b.Weights, wantW) {
		t.Fatalf("inputs %v\ntargets %v\nweights %v", b.Inputs, b.Targets, b.Weights)
	}
	if !reflect.DeepEqual(b.Lengths, []int{4, 2}) || !reflect.DeepEqual(b.Rows, []int{7, 9}) {
		t.Fatalf("lengths %v rows %v", b.Lengths, b.Rows)
	}
	if b.Positions != nil || b.Segments != nil {
		t.Fatal("unpacked batch has packing fields")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("collating a row longer than T did not panic")
		}
	}()
	Collate([]Example{ex(0, []int{1, 2, 3}, []int{4})}, 3, 0)
}

func TestFitTruncation(t *testing.T) {
	long := ex(1, []int{1, 2, 3}, []int{4, 5, 6, 7}) // 7 tokens
	cases := []struct {
		name   string
		opts   BatchOptions
		in     Example
		want   *Example // nil: dropped
		report TruncationReport
	}{
		{"fits", BatchOptions{MaxLen: 8}, long, &long, TruncationReport{Examples: 1, Kept: 1}},
		{"keep_start", BatchOptions{MaxLen: 5}, long, ptr(ex(1, []int{1, 2, 3}, []int{4, 5})),
			TruncationReport{Examples: 1, Kept: 1, Truncated: 1, TokensCut: 2}},
		{"keep_end", BatchOptions{MaxLen: 5, Truncation: TruncateKeepEnd}, long, ptr(ex(1, []int{3}, []int{4, 5, 6, 7})),
			TruncationReport{Examples: 1, Kept: 1, Truncated: 1, TokensCut: 2}},
		{"long prompt dropped", BatchOptions{MaxLen: 3, DropLongPrompts: true, Truncation: TruncateKeepEnd}, long, nil,
			TruncationReport{Examples: 1, DroppedLongPrompt: 1}},
		{"long prompt cut at the start", BatchOptions{MaxLen: 3, Truncation: TruncateKeepEnd}, long, ptr(ex(1, nil, []int{5, 6, 7})),
			TruncationReport{Examples: 1, Kept: 1, Truncated: 1, TokensCut: 4}},
		{"keep_start leaves no completion", BatchOptions{MaxLen: 3}, long, nil,
			TruncationReport{Examples: 1, DroppedNoCompletion: 1}},
		{"completion only in token 0", BatchOptions{MaxLen: 8}, ex(2, nil, []int{5}), nil,
			TruncationReport{Examples: 1, DroppedNoCompletion: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rep TruncationReport
			got, ok := c.opts.Fit(c.in, &rep)
			if ok != (c.want != nil) {
				t.Fatalf("kept = %v", ok)
			}
			if ok && !reflect.DeepEqual(got, *c.want) {
				t.Fatalf("got %+v, want %+v", got, *c.want)
			}
			if rep != c.report {
				t.Fatalf("report %+v, want %+v", rep, c.report)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// dataset makes n examples of varied length: row i has a 2-token prompt and
// 1 + i%9 completion tokens; token ids encode the row.
func dataset(n int) []Example {
	out := make([]Example, n)
	for i := range out {
		c := make([]int, 1+i%9)
		for j := range c {
			c[j] = 1000*i + j + 1
		}
		out[i] = ex(i, []int{1000 * i, 1000*i + 500}, c)
	}
	return out
}

func TestBatcherBucketsAndOrder(t *testing.T) {
	opts := BatchOptions{BatchSize: 4, MaxLen: 16, PadID: -0, Buckets: []int{4, 8, 16}}
	b, rep, err := NewBatcher(dataset(30), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Examples != 30 || rep.Kept != 30 {
		t.Fatalf("report %+v", rep)
	}
	batches := b.Epoch(0)
	seen := map[int]int{}
	lastFirst := -1
	for _, bt := range batches {
		if bt.B != 4 {
			t.Fatalf("B = %d", bt.B)
		}
		longest := 0
		for r := 0; r < bt.B; r++ {
			longest = max(longest, bt.Lengths[r])
			if bt.Rows[r] >= 0 {
				seen[bt.Rows[r]]++
			} else if bt.Lengths[r] != 0 {
				t.Fatal("padding row with tokens")
			}
		}
		// T is the smallest bucket that holds the longest row.
		wantT := 16
		for _, bk := range opts.Buckets {
			if bk >= longest {
				wantT = bk
				break
			}
		}
		if bt.T != wantT {
			t.Fatalf("T = %d for longest row %d, want %d", bt.T, longest, wantT)
		}
		// Unshuffled batches follow the data order of their first row.
		if bt.Rows[0] <= lastFirst {
			t.Fatalf("batch starting at row %d after one starting at %d", bt.Rows[0], lastFirst)
		}
		lastFirst = bt.Rows[0]
	}
	for i := 0; i < 30; i++ {
		if seen[i] != 1 {
			t.Fatalf("row %d appears %d times", i, seen[i])
		}
	}
}

func TestBatcherShuffleDeterministic(t *testing.T) {
	opts := BatchOptions{BatchSize: 3, MaxLen: 16, Buckets: []int{8, 16}, Seed: 42, Shuffle: true}
	b, _, err := NewBatcher(dataset(40), opts)
	if err != nil {
		t.Fatal(err)
	}
	e0, e0again, e1 := b.Epoch(0), b.Epoch(0), b.Epoch(1)
	if !reflect.DeepEqual(e0, e0again) {
		t.Fatal("same (seed, epoch) gave different batches")
	}
	if reflect.DeepEqual(rowsOf(e0), rowsOf(e1)) {
		t.Fatal("epochs 0 and 1 have the same order")
	}
	b2, _, _ := NewBatcher(dataset(40), BatchOptions{BatchSize: 3, MaxLen: 16, Buckets: []int{8, 16}, Seed: 43, Shuffle: true})
	if reflect.DeepEqual(rowsOf(e0), rowsOf(b2.Epoch(0))) {
		t.Fatal("seeds 42 and 43 have the same order")
	}
	all := rowsOf(e1)
	sort.Ints(all)
	for i, r := range all {
		if r != i {
			t.Fatalf("shuffled epoch lost or repeated rows: %v", all)
		}
	}
}

func rowsOf(batches []Batch) []int {
	var rows []int
	for _, b := range batches {
		for _, r := range b.Rows {
			if r >= 0 {
				rows = append(rows, r)
			}
		}
	}
	return rows
}

func TestBatcherPacking(t *testing.T) {
	examples := []Example{
		ex(0, []int{1, 2}, []int{3, 4}),     // 4
		ex(1, []int{5}, []int{6, 7}),        // 3
		ex(2, []int{8, 9, 10}, []int{11}),   // 4
		ex(3, []int{12}, []int{13, 14, 15}), // 4
	}
	b, _, err := NewBatcher(examples, BatchOptions{BatchSize: 2, MaxLen: 8, PadID: 99, Pack: true})
	if err != nil {
		t.Fatal(err)
	}
	batches := b.Epoch(0)
	if len(batches) != 1 {
		t.Fatalf("%d batches, want 1", len(batches))
	}
	bt := batches[0]
	// First fit: row 0 holds examples 0 and 1 (7 tokens), row 1 holds 2 and 3.
	if !reflect.DeepEqual(bt.PackedRows, [][]int{{0, 1}, {2, 3}}) || !reflect.DeepEqual(bt.Lengths, []int{7, 8}) {
		t.Fatalf("packed rows %v lengths %v", bt.PackedRows, bt.Lengths)
	}
	row0 := bt.Inputs[:8]
	if !reflect.DeepEqual(row0, []int32{1, 2, 3, 4, 5, 6, 7, 99}) {
		t.Fatalf("row 0 inputs %v", row0)
	}
	// The target of example 0's last token is example 1's first, but it is
	// not learned: it belongs to another example.
	if !reflect.DeepEqual(bt.Weights[:8], []float32{0, 1, 1, 0, 1, 1, 0, 0}) {
		t.Fatalf("row 0 weights %v", bt.Weights[:8])
	}
	if !reflect.DeepEqual(bt.Positions[:8], []int32{0, 1, 2, 3, 0, 1, 2, 0}) || !reflect.DeepEqual(bt.Segments[:8], []int32{1, 1, 1, 1, 2, 2, 2, 0}) {
		t.Fatalf("positions %v segments %v", bt.Positions[:8], bt.Segments[:8])
	}
}

func TestBatcherPartialBatchPadded(t *testing.T) {
	b, _, err := NewBatcher(dataset(5), BatchOptions{BatchSize: 4, MaxLen: 16, PadID: 7})
	if err != nil {
		t.Fatal(err)
	}
	batches := b.Epoch(0)
	if len(batches) != 2 {
		t.Fatalf("%d batches", len(batches))
	}
	last := batches[1]
	if last.B != 4 || !reflect.DeepEqual(last.Rows, []int{4, -1, -1, -1}) || last.Lengths[1] != 0 {
		t.Fatalf("last batch rows %v lengths %v", last.Rows, last.Lengths)
	}
	for i := last.T; i < 4*last.T; i++ {
		if last.Inputs[i] != 7 || last.Weights[i] != 0 {
			t.Fatalf("padding row token %d: input %d weight %v", i, last.Inputs[i], last.Weights[i])
		}
	}
}

func TestBatcherOptionErrors(t *testing.T) {
	cases := []struct {
		opts BatchOptions
		want string
	}{
		{BatchOptions{BatchSize: 0, MaxLen: 8}, "batch size 0"},
		{BatchOptions{BatchSize: 1, MaxLen: 1}, "max length 1"},
		{BatchOptions{BatchSize: 1, MaxLen: 8, Buckets: []int{8, 4}}, "strictly ascending"},
		{BatchOptions{BatchSize: 1, MaxLen: 32, Buckets: []int{8, 16}}, "max length 32 exceeds the largest bucket 16"},
		{BatchOptions{BatchSize: 1, MaxLen: 8, Truncation: "middle"}, `unknown truncation "middle"`},
	}
	for _, c := range cases {
		if _, _, err := NewBatcher(nil, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.opts, err, c.want)
		}
	}
	bad := Example{IDs: []int{1, 2}, Mask: []bool{true}, Row: 3}
	if _, _, err := NewBatcher([]Example{bad}, BatchOptions{BatchSize: 1, MaxLen: 8}); err == nil || !strings.Contains(err.Error(), "row 3: 2 ids but 1 mask entries") {
		t.Errorf("mask mismatch: %v", err)
	}
}

// TestStreamBatcherMatchesBatcher: with one window holding everything, the
// streaming batcher gives exactly a Batcher epoch; with small windows it
// still emits every row once, in full batches except at the very end.
func TestStreamBatcherMatchesBatcher(t *testing.T) {
	for _, pack := range []bool{false, true} {
		opts := BatchOptions{BatchSize: 4, MaxLen: 16, Buckets: []int{8, 16}, Seed: 7, Shuffle: true, Pack: pack}
		data := dataset(50)
		b, want, _ := NewBatcher(data, opts)
		var got []Batch
		sb, err := NewStreamBatcher(opts, 3, 1000, func(bt Batch) error { got = append(got, bt); return nil })
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range data {
			if err := sb.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := sb.Flush()
		if err != nil || rep != want {
			t.Fatalf("flush: %+v (want %+v), %v", rep, want, err)
		}
		if !reflect.DeepEqual(got, b.Epoch(3)) {
			t.Fatalf("pack=%v: stream batches differ from the Batcher's", pack)
		}

		got = nil
		sb, _ = NewStreamBatcher(opts, 3, 8, func(bt Batch) error { got = append(got, bt); return nil })
		for _, e := range data {
			sb.Add(e)
		}
		sb.Flush()
		var rows []int
		for _, bt := range got {
			if pack {
				for _, pr := range bt.PackedRows {
					rows = append(rows, pr...)
				}
			} else {
				rows = append(rows, rowsOf([]Batch{bt})...)
			}
		}
		sort.Ints(rows)
		if len(rows) != 50 || rows[0] != 0 || rows[49] != 49 {
			t.Fatalf("pack=%v: small windows emitted rows %v", pack, rows)
		}
	}
}

// TestStreamFromArrow streams a dataset through StreamPreferences into a
// StreamBatcher, the path for datasets larger than memory.
func TestStreamFromArrow(t *testing.T) {
	path := t.TempDir() + "/p.arrow"
	rows := make([]Prompt, 2500)
	for i := range rows {
		rows[i].Prompt = strings.Repeat("a", 1+i%20)
	}
	if err := WritePrompts(path, rows); err != nil {
		t.Fatal(err)
	}
	opts := BatchOptions{BatchSize: 8, MaxLen: 32, Buckets: []int{16, 32}}
	total := 0
	sb, _ := NewStreamBatcher(opts, 0, 256, func(b Batch) error {
		for r := 0; r < b.B; r++ {
			if b.Rows[r] >= 0 {
				total++
				// Byte-level "tokens": one per character plus a completion token.
				if b.Lengths[r] != len(rows[b.Rows[r]].Prompt)+1 {
					t.Fatalf("row %d length %d", b.Rows[r], b.Lengths[r])
				}
			}
		}
		return nil
	})
	err := StreamPrompts(path, func(row int, p Prompt) error {
		e := Example{Row: row}
		for _, c := range []byte(p.Prompt) {
			e.IDs, e.Mask = append(e.IDs, int(c)), append(e.Mask, false)
		}
		e.IDs, e.Mask = append(e.IDs, 2), append(e.Mask, true)
		return sb.Add(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := sb.Flush(); err != nil || rep.Kept != 2500 {
		t.Fatalf("%+v %v", rep, err)
	}
	if total != 2500 {
		t.Fatalf("%d rows batched", total)
	}
}
