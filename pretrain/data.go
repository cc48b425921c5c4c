package pretrain

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
)

// SplitHeldOut divides documents into training and held-out sets: a
// document is held out when a hash of its text falls in the first
// fraction of the range, so the split is stable under reordering and
// appending, and duplicates of a document land on the same side.
func SplitHeldOut(docs []string, fraction float64) (trainDocs, heldOut []string) {
	for _, d := range docs {
		h := fnv.New64a()
		h.Write([]byte(d))
		if float64(h.Sum64()>>11)/(1<<53) < fraction {
			heldOut = append(heldOut, d)
		} else {
			trainDocs = append(trainDocs, d)
		}
	}
	return trainDocs, heldOut
}

// Order is a resumable pass over the full training windows in a shuffled
// order that is a function of the seed and the epoch alone.
type Order struct {
	Seed  uint64 `json:"seed"`
	N     int    `json:"windows"`
	Epoch int    `json:"epoch"`
	Pos   int    `json:"pos"`
	perm  []int
}

// Next returns the next window index, moving to a fresh permutation at the
// end of an epoch.
func (o *Order) Next() int {
	if o.perm == nil {
		o.perm = rand.New(rand.NewPCG(o.Seed, uint64(o.Epoch))).Perm(o.N)
	}
	k := o.perm[o.Pos]
	o.Pos++
	if o.Pos == o.N {
		o.Epoch, o.Pos, o.perm = o.Epoch+1, 0, nil
	}
	return k
}

// Progress is the fractional number of epochs completed.
func (o *Order) Progress() float64 { return float64(o.Epoch) + float64(o.Pos)/float64(o.N) }

// MarshalState and RestoreState are the train.Hooks pair for the order.
func (o *Order) MarshalState() (json.RawMessage, error) { return json.Marshal(o) }

// RestoreState puts back a position saved by MarshalState, checking that
// it belongs to the same data.
func (o *Order) RestoreState(raw json.RawMessage) error {
	var s Order
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.Seed != o.Seed || s.N != o.N {
		return fmt.Errorf("saved data position is for %d windows with seed %d, this corpus has %d with seed %d", s.N, s.Seed, o.N, o.Seed)
	}
	if s.Pos < 0 || s.Pos >= s.N || s.Epoch < 0 {
		return errors.New("saved data position is out of range")
	}
	o.Epoch, o.Pos, o.perm = s.Epoch, s.Pos, nil
	return nil
}
