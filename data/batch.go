package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Truncation policies for rows longer than BatchOptions.MaxLen.
const (
	// TruncateKeepStart keeps the first MaxLen tokens: the end of the
	// completion is cut (TRL's truncation_mode="keep_start").
	TruncateKeepStart = "keep_start"
	// TruncateKeepEnd keeps the last MaxLen tokens: the start of the prompt
	// is cut (TRL's truncation_mode="keep_end").
	TruncateKeepEnd = "keep_end"
)

// Example is one tokenized row. Mask[i] is true when token i belongs to the
// completion, whose tokens the loss is taken on. Row is the dataset row it
// came from.
type Example struct {
	IDs  []int
	Mask []bool
	Row  int
}

// Batch is a right-padded block of B rows of T tokens, laid out row-major:
// element (b, t) is at index b*T+t.
//
//	Inputs[b,t]  = token t of row b (PadID past its length)
//	Targets[b,t] = token t+1 (PadID where there is none)
//	Weights[b,t] = 1 when token t+1 is a completion token of the same
//	               example within the row's length, else 0
//
// Rows filling a partial batch up to B have length 0 and Rows[b] = -1.
// Packed batches also carry, per token, the position within its own example
// and a 1-based segment number (0 on padding), so a model may keep packed
// examples from attending to each other.
type Batch struct {
	B, T    int
	Inputs  []int32   // (B, T)
	Targets []int32   // (B, T)
	Weights []float32 // (B, T)
	Lengths []int     // (B) real tokens per row
	Rows    []int     // (B) dataset row of each row's first example; -1 for padding rows

	Positions  []int32 // (B, T) packed batches only
	Segments   []int32 // (B, T) packed batches only
	PackedRows [][]int // (B) packed batches only: dataset rows in each row
}

// BatchOptions configures batching.
type BatchOptions struct {
	BatchSize int // rows per batch; every batch has exactly this many (padding rows fill the last)
	MaxLen    int // tokens per row at most
	PadID     int // token id of padding

	Truncation      string // TruncateKeepStart (default) or TruncateKeepEnd
	DropLongPrompts bool   // drop rows whose prompt alone fills MaxLen, instead of cutting them

	// Buckets are the allowed values of T, ascending; a batch takes the
	// smallest bucket that holds its longest row, so a model sees only these
	// shapes. Empty means the single bucket MaxLen. MaxLen may not exceed
	// the largest bucket.
	Buckets []int

	Pack bool // pack several examples into each row, up to MaxLen tokens (SFT)

	Seed    int64
	Shuffle bool // shuffle rows and batch order, deterministically for (Seed, epoch)
}

// TruncationReport counts what fitting rows to MaxLen did.
type TruncationReport struct {
	Examples            int // rows given
	Kept                int // rows that reach batches
	Truncated           int // kept rows that were cut to MaxLen
	TokensCut           int // tokens removed from kept rows
	DroppedLongPrompt   int // rows dropped because the prompt alone fills MaxLen
	DroppedNoCompletion int // rows dropped with no completion token left to learn from
}

func (r *TruncationReport) add(o TruncationReport) {
	r.Examples += o.Examples
	r.Kept += o.Kept
	r.Truncated += o.Truncated
	r.TokensCut += o.TokensCut
	r.DroppedLongPrompt += o.DroppedLongPrompt
	r.DroppedNoCompletion += o.DroppedNoCompletion
}

// String summarises the report in one line.
func (r TruncationReport) String() string {
	return fmt.Sprintf("%d rows: %d kept (%d truncated, %d tokens cut), %d dropped for long prompts, %d dropped with no completion",
		r.Examples, r.Kept, r.Truncated, r.TokensCut, r.DroppedLongPrompt, r.DroppedNoCompletion)
}

// Validate checks the options.
func (o BatchOptions) Validate() error {
	switch {
	case o.BatchSize <= 0:
		return fmt.Errorf("batch size %d: want > 0", o.BatchSize)
	case o.MaxLen < 2:
		return fmt.Errorf("max length %d: want >= 2", o.MaxLen)
	case o.PadID < 0 || o.PadID > math.MaxInt32:
		return fmt.Errorf("pad id %d out of int32 range", o.PadID)
	case o.Truncation != "" && o.Truncation != TruncateKeepStart && o.Truncation != TruncateKeepEnd:
		return &unknownNameError{what: "truncation", name: o.Truncation, known: []string{TruncateKeepStart, TruncateKeepEnd}}
	}
	for i, b := range o.Buckets {
		if b <= 0 || (i > 0 && b <= o.Buckets[i-1]) {
			return fmt.Errorf("buckets %v: want positive and strictly ascending", o.Buckets)
		}
	}
	if n := len(o.Buckets); n > 0 && o.MaxLen > o.Buckets[n-1] {
		return fmt.Errorf("max length %d exceeds the largest bucket %d", o.MaxLen, o.Buckets[n-1])
	}
	return nil
}

// bucket returns the T of a row of n tokens.
func (o BatchOptions) bucket(n int) int {
	for _, b := range o.Buckets {
		if b >= n {
			return b
		}
	}
	return o.MaxLen
}

// Fit applies the truncation policy to one example and counts the outcome
// in rep; ok is false when the row is dropped. Stages that build their own
// groupings (DPO pairs) use it to truncate exactly as the Batcher does.
func (o BatchOptions) Fit(ex Example, rep *TruncationReport) (fitted Example, ok bool) {
	rep.Examples++
	n := len(ex.IDs)
	prompt := 0
	for prompt < n && !ex.Mask[prompt] {
		prompt++
	}
	if o.DropLongPrompts && prompt < n && prompt >= o.MaxLen {
		rep.DroppedLongPrompt++
		return ex, false
	}
	cut := 0
	if n > o.MaxLen {
		cut = n - o.MaxLen
		if o.Truncation == TruncateKeepEnd {
			ex = Example{IDs: ex.IDs[cut:], Mask: ex.Mask[cut:], Row: ex.Row}
		} else {
			ex = Example{IDs: ex.IDs[:o.MaxLen], Mask: ex.Mask[:o.MaxLen], Row: ex.Row}
		}
	}
	// Token 0 is never a target: a row learns only from completion tokens
	// at positions 1..n-1.
	learn := false
	for _, m := range ex.Mask[min(1, len(ex.Mask)):] {
		learn = learn || m
	}
	if !learn {
		rep.DroppedNoCompletion++
		return ex, false
	}
	rep.Kept++
	if cut > 0 {
		rep.Truncated++
		rep.TokensCut += cut
	}
	return ex, true
}

// checkExample rejects malformed examples, naming their row.
func checkExample(ex Example) error {
	if len(ex.Mask) != len(ex.IDs) {
		return fmt.Errorf("example of row %d: %d ids but %d mask entries", ex.Row, len(ex.IDs), len(ex.Mask))
	}
	for _, id := range ex.IDs {
		if id < 0 || id > math.MaxInt32 {
			return fmt.Errorf("example of row %d: token id %d out of int32 range", ex.Row, id)
		}
	}
	return nil
}

// unit is one row of a batch: a single example, or several packed.
type unit []Example

func (u unit) len() int {
	n := 0
	for _, ex := range u {
		n += len(ex.IDs)
	}
	return n
}

// pack fills rows of up to capacity tokens with examples in the given
// order. Each example goes into the first of the most recent packWindow
// open rows with room (first fit over a bounded window: linear time, little
// waste, deterministic for a given order); examples are never split.
func pack(examples []Example, capacity int) []unit {
	const packWindow = 64
	var rows []unit
	var used []int
	open := 0 // rows before open are closed
	for _, ex := range examples {
		n := len(ex.IDs)
		placed := false
		for r := open; r < len(rows); r++ {
			if used[r]+n <= capacity {
				rows[r] = append(rows[r], ex)
				used[r] += n
				placed = true
				break
			}
		}
		if !placed {
			rows = append(rows, unit{ex})
			used = append(used, n)
			if len(rows)-open > packWindow {
				open++
			}
		}
	}
	return rows
}

// plannedBatch is a batch before collation.
type plannedBatch struct {
	T     int
	units []unit
	order int // position of its first unit, for unshuffled order
}

// plan groups units by bucket into batches of BatchSize, in the order
// given. With final, each bucket's last partial batch is kept (and padded
// at collation); otherwise its units are returned as leftover. Batches come
// out in order of their first unit, or shuffled by rng.
func (o BatchOptions) plan(units []unit, rng *rand.Rand, final bool) (batches []plannedBatch, leftover []unit) {
	open := map[int]*plannedBatch{}
	for i, u := range units {
		T := o.bucket(u.len())
		b := open[T]
		if b == nil {
			b = &plannedBatch{T: T, order: i}
			open[T] = b
		}
		b.units = append(b.units, u)
		if len(b.units) == o.BatchSize {
			batches = append(batches, *b)
			delete(open, T)
		}
	}
	rest := make([]*plannedBatch, 0, len(open))
	for _, b := range open {
		rest = append(rest, b)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].order < rest[j].order })
	for _, b := range rest {
		if final {
			batches = append(batches, *b)
		} else {
			leftover = append(leftover, b.units...)
		}
	}
	if o.Shuffle {
		rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	} else {
		sort.SliceStable(batches, func(i, j int) bool { return batches[i].order < batches[j].order })
	}
	return batches, leftover
}

// Collate lays out examples as one batch of len(examples) rows of T tokens,
// right-padded with padID. It panics if an example is longer than T or its
// mask does not match its ids: callers choose T from their rows.
func Collate(examples []Example, T, padID int) Batch {
	units := make([]unit, len(examples))
	for i, ex := range examples {
		units[i] = unit{ex}
	}
	return collate(units, len(units), T, padID, false)
}

// collate builds a batch of B rows from units (B >= len(units); the rest
// are padding rows).
func collate(units []unit, B, T, padID int, packed bool) Batch {
	pad := int32(padID)
	bt := B * T
	b := Batch{
		B: B, T: T,
		Inputs:  make([]int32, bt),
		Targets: make([]int32, bt),
		Weights: make([]float32, bt),
		Lengths: make([]int, B),
		Rows:    make([]int, B),
	}
	if packed {
		b.Positions = make([]int32, bt)
		b.Segments = make([]int32, bt)
		b.PackedRows = make([][]int, B)
	}
	for i := range b.Inputs {
		b.Inputs[i], b.Targets[i] = pad, pad
	}
	for r := 0; r < B; r++ {
		b.Rows[r] = -1
		if r >= len(units) {
			continue
		}
		u := units[r]
		if n := u.len(); n > T {
			panic(fmt.Sprintf("data: collate: row of %d tokens exceeds T=%d", n, T))
		}
		row := b.Inputs[r*T : (r+1)*T]
		t := 0
		for s, ex := range u {
			if len(ex.Mask) != len(ex.IDs) {
				panic(fmt.Sprintf("data: collate: example of row %d has %d ids but %d mask entries", ex.Row, len(ex.IDs), len(ex.Mask)))
			}
			if s == 0 {
				b.Rows[r] = ex.Row
			}
			if packed {
				b.PackedRows[r] = append(b.PackedRows[r], ex.Row)
			}
			for j, id := range ex.IDs {
				row[t] = int32(id)
				if t > 0 {
					b.Targets[r*T+t-1] = int32(id)
					// Token t is the target of position t-1; it counts only
					// inside the same example.
					if j > 0 && ex.Mask[j] {
						b.Weights[r*T+t-1] = 1
					}
				}
				if packed {
					b.Positions[r*T+t] = int32(j)
					b.Segments[r*T+t] = int32(s + 1)
				}
				t++
			}
		}
		b.Lengths[r] = t
	}
	return b
}

// Batcher turns a dataset's examples into batches, epoch after epoch.
type Batcher struct {
	opts     BatchOptions
	examples []Example
	report   TruncationReport
}

// NewBatcher fits every example to opts.MaxLen (see BatchOptions.Fit) and
// keeps those that remain, reporting what was cut and dropped.
func NewBatcher(examples []Example, opts BatchOptions) (*Batcher, TruncationReport, error) {
	if err := opts.Validate(); err != nil {
		return nil, TruncationReport{}, err
	}
	b := &Batcher{opts: opts}
	for _, ex := range examples {
		if err := checkExample(ex); err != nil {
			return nil, TruncationReport{}, err
		}
		if fitted, ok := opts.Fit(ex, &b.report); ok {
			b.examples = append(b.examples, fitted)
		}
	}
	return b, b.report, nil
}

// Report is what fitting the examples did.
func (b *Batcher) Report() TruncationReport { return b.report }

// Examples is the number of examples that reach batches.
func (b *Batcher) Examples() int { return len(b.examples) }

// Epoch returns the batches of one epoch. The order depends only on
// (Seed, epoch): with Shuffle, rows are shuffled before bucketing (and
// packing) and the batches are shuffled again; without it, batches follow
// the dataset order.
func (b *Batcher) Epoch(epoch int) []Batch {
	rng := rand.New(rand.NewPCG(uint64(b.opts.Seed), uint64(epoch)))
	order := make([]Example, len(b.examples))
	copy(order, b.examples)
	if b.opts.Shuffle {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	units := b.opts.units(order)
	planned, _ := b.opts.plan(units, rng, true)
	out := make([]Batch, len(planned))
	for i, p := range planned {
		out[i] = collate(p.units, b.opts.BatchSize, p.T, b.opts.PadID, b.opts.Pack)
	}
	return out
}

// units makes batch rows of examples: packed, or one each.
func (o BatchOptions) units(examples []Example) []unit {
	if o.Pack {
		return pack(examples, o.MaxLen)
	}
	units := make([]unit, len(examples))
	for i, ex := range examples {
		units[i] = unit{ex}
	}
	return units
}

// StreamBatcher batches examples as they arrive, holding only a window of
// them, for datasets larger than memory (pair it with StreamInstructions
// and friends). Each full window is shuffled (with Shuffle), bucketed and
// packed like a Batcher epoch; rows left over in a bucket's partial batch
// carry into the next window, and Flush emits the rest.
type StreamBatcher struct {
	opts   BatchOptions
	window int
	rng    *rand.Rand
	emit   func(Batch) error
	buf    []Example
	carry  []unit
	report TruncationReport
}

// NewStreamBatcher batches one epoch; emit receives every batch in order.
// window is the number of examples shuffled together (0 = 64 batches'
// worth).
func NewStreamBatcher(opts BatchOptions, epoch, window int, emit func(Batch) error) (*StreamBatcher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if window == 0 {
		window = 64 * opts.BatchSize
	}
	if window < opts.BatchSize {
		return nil, fmt.Errorf("window %d smaller than the batch size %d", window, opts.BatchSize)
	}
	return &StreamBatcher{opts: opts, window: window, emit: emit,
		rng: rand.New(rand.NewPCG(uint64(opts.Seed), uint64(epoch)))}, nil
}

// Add takes one example (its slices are kept, not copied).
func (s *StreamBatcher) Add(ex Example) error {
	if err := checkExample(ex); err != nil {
		return err
	}
	if fitted, ok := s.opts.Fit(ex, &s.report); ok {
		s.buf = append(s.buf, fitted)
	}
	if len(s.buf) >= s.window {
		return s.drain(false)
	}
	return nil
}

// Flush emits the remaining batches and returns the truncation report.
func (s *StreamBatcher) Flush() (TruncationReport, error) {
	return s.report, s.drain(true)
}

func (s *StreamBatcher) drain(final bool) error {
	if s.opts.Shuffle {
		s.rng.Shuffle(len(s.buf), func(i, j int) { s.buf[i], s.buf[j] = s.buf[j], s.buf[i] })
	}
	units := append(s.carry, s.opts.units(s.buf)...)
	s.buf = s.buf[:0]
	planned, leftover := s.opts.plan(units, s.rng, final)
	s.carry = leftover
	for _, p := range planned {
		if err := s.emit(collate(p.units, s.opts.BatchSize, p.T, s.opts.PadID, s.opts.Pack)); err != nil {
			return err
		}
	}
	return nil
}
