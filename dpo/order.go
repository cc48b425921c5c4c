package dpo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// order is the sequence in which training pairs are visited: epoch after
// epoch, each a permutation of the N pairs drawn from (Seed, epoch) alone,
// so the position Next is all a checkpoint needs to continue it exactly.
type order struct {
	Seed uint64
	N    int
	Next int // pairs taken so far, over all epochs

	perm      []int
	permEpoch int
}

// take returns the indices of the next k pairs (crossing into the next
// epoch when the current one runs out).
func (o *order) take(k int) []int {
	out := make([]int, k)
	for i := range out {
		e, j := o.Next/o.N, o.Next%o.N
		if o.perm == nil || o.permEpoch != e {
			o.perm = rand.New(rand.NewPCG(o.Seed, uint64(e))).Perm(o.N)
			o.permEpoch = e
		}
		out[i] = o.perm[j]
		o.Next++
	}
	return out
}

// epoch is the fractional number of passes over the pairs so far.
func (o *order) epoch() float64 { return float64(o.Next) / float64(o.N) }

type orderState struct {
	Next int `json:"next"`
	N    int `json:"pairs"`
}

func (o *order) state() (json.RawMessage, error) {
	return json.Marshal(orderState{Next: o.Next, N: o.N})
}

func (o *order) restore(b json.RawMessage) error {
	var s orderState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("dpo: data position: %w", err)
	}
	if s.N != o.N || s.Next < 0 {
		return fmt.Errorf("dpo: the checkpoint was taken over %d training pairs, the data now has %d", s.N, o.N)
	}
	o.Next, o.perm = s.Next, nil
	return nil
}
