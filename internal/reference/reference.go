// Package reference reads the cases that model/testdata/gen_reference.py
// writes from an independent float64 PyTorch forward pass: fixture.json
// (the batch, the expected loss and where each array lies) and fixture.bin
// (little-endian float32 arrays: the checkpoint's tensors, the logits and
// the target log-probabilities). The model, generate and eval tests read
// them through it; it imports nothing of the module, so the model
// package's own tests can use it.
//
// May import: the standard library only.
package reference

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// Case is one reference case.
type Case struct {
	Dir         string
	Batch, Seq  int
	Tokens      []int32
	Targets     []int32
	LossWeights []float64
	Loss        float64
	// MoEBalance is the sequence-level balance loss (alpha 1) summed over
	// the mixture-of-experts layers; nil without experts.
	MoEBalance *float64
	// Logits (Batch·Seq, V) and Logprobs (Batch·Seq) of the targets.
	Logits, Logprobs []float32
	// Tensors are the checkpoint's tensors by Hugging Face name.
	Tensors map[string][]float32
}

type array struct {
	Name   string
	Shape  []int
	Offset int
}

// Load reads the case in dir; an array outside fixture.bin is an error
// naming it.
func Load(dir string) (*Case, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	if err != nil {
		return nil, err
	}
	var f struct {
		Batch, Seq       int
		Tokens, Targets  []int32
		LossWeights      []float64 `json:"loss_weights"`
		Loss             float64
		MoEBalance       *float64 `json:"moe_balance"`
		Tensors          []array
		Logits, Logprobs array
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "fixture.bin"))
	if err != nil {
		return nil, err
	}
	floats := make([]float32, len(bin)/4)
	for i := range floats {
		floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
	}
	slice := func(a array) ([]float32, error) {
		n := 1
		for _, s := range a.Shape {
			n *= s
		}
		if a.Offset < 0 || a.Offset+n > len(floats) {
			return nil, fmt.Errorf("%s: array %q at %d of %d floats is outside fixture.bin (%d floats)", dir, a.Name, a.Offset, n, len(floats))
		}
		return floats[a.Offset : a.Offset+n], nil
	}
	c := &Case{Dir: dir, Batch: f.Batch, Seq: f.Seq, Tokens: f.Tokens, Targets: f.Targets, LossWeights: f.LossWeights,
		Loss: f.Loss, MoEBalance: f.MoEBalance, Tensors: map[string][]float32{}}
	if c.Logits, err = slice(f.Logits); err != nil {
		return nil, err
	}
	if c.Logprobs, err = slice(f.Logprobs); err != nil {
		return nil, err
	}
	for _, a := range f.Tensors {
		if c.Tensors[a.Name], err = slice(a); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Fill copies the case's checkpoint into params (Hugging Face name → the
// parameter's values): every parameter must be in the case with its size,
// and every tensor of the case must be a parameter.
func (c *Case) Fill(params map[string][]float32) error {
	for name, dst := range params {
		src, ok := c.Tensors[name]
		if !ok {
			return fmt.Errorf("%s: the fixture lacks %s", c.Dir, name)
		}
		if len(src) != len(dst) {
			return fmt.Errorf("%s: %s has %d values, the model wants %d", c.Dir, name, len(src), len(dst))
		}
		copy(dst, src)
	}
	var extra []string
	for name := range c.Tensors {
		if _, ok := params[name]; !ok {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%s: the model has no parameter %v", c.Dir, extra)
	}
	return nil
}
