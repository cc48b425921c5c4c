package sft

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/gotune/gotune/data"
)

// cursor walks the training batches epoch after epoch. An epoch's batches
// depend only on (seed, epoch) (data.Batcher.Epoch), so the position
// (epoch, index) is all a checkpoint needs to continue exactly.
type cursor struct {
	b       *data.Batcher
	epoch   int
	pos     int
	batches []data.Batch // of epoch
}

// cursorState is the JSON of a cursor in a checkpoint; Examples and
// Batches tie it to the data it was made on.
type cursorState struct {
	Epoch    int `json:"epoch"`
	Pos      int `json:"pos"`
	Batches  int `json:"batches"`
	Examples int `json:"examples"`
}

func newCursor(b *data.Batcher) *cursor {
	return &cursor{b: b, batches: b.Epoch(0)}
}

// next returns the next batch, moving to the following epoch at the end of
// one.
func (c *cursor) next() data.Batch {
	if c.pos == len(c.batches) {
		c.epoch, c.pos = c.epoch+1, 0
		c.batches = c.b.Epoch(c.epoch)
	}
	b := c.batches[c.pos]
	c.pos++
	return b
}

// progress is the fractional number of epochs done.
func (c *cursor) progress() float64 {
	return float64(c.epoch) + float64(c.pos)/float64(len(c.batches))
}

func (c *cursor) marshal() (json.RawMessage, error) {
	return json.Marshal(cursorState{Epoch: c.epoch, Pos: c.pos, Batches: len(c.batches), Examples: c.b.Examples()})
}

func (c *cursor) restore(raw json.RawMessage) error {
	var s cursorState
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("data position: %w", err)
	}
	if s.Epoch < 0 {
		return fmt.Errorf("data position: negative epoch %d", s.Epoch)
	}
	batches := c.b.Epoch(s.Epoch)
	if s.Examples != c.b.Examples() || s.Batches != len(batches) {
		return fmt.Errorf("data position is for %d examples in %d batches per epoch, this data has %d in %d: resume with the same data and batch settings",
			s.Examples, s.Batches, c.b.Examples(), len(batches))
	}
	if s.Pos < 0 || s.Pos > len(batches) {
		return fmt.Errorf("data position %d is outside the epoch's %d batches", s.Pos, len(batches))
	}
	c.epoch, c.pos, c.batches = s.Epoch, s.Pos, batches
	return nil
}

// shapes lists the sequence lengths T that batches of these examples can
// take: the bucket of each example's length (a batch takes the bucket of
// its longest row), ascending; MaxLen alone when packed.
func shapes(examples []data.Example, opts data.BatchOptions) []int {
	if opts.Pack {
		return []int{opts.MaxLen}
	}
	seen := map[int]bool{}
	var out []int
	for _, ex := range examples {
		T := bucketOf(min(len(ex.IDs), opts.MaxLen), opts)
		if !seen[T] {
			seen[T] = true
			out = append(out, T)
		}
	}
	slices.Sort(out)
	return out
}

// bucketOf is the smallest bucket holding n tokens (MaxLen without buckets),
// as data.Batcher chooses it.
func bucketOf(n int, opts data.BatchOptions) int {
	for _, b := range opts.Buckets {
		if b >= n {
			return b
		}
	}
	return opts.MaxLen
}
