package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/checkpoints/safetensors"
)

// Files of a checkpoint directory (<Dir>/state).
const (
	StateFile     = "trainer_state.json"    // State as JSON
	ParamsFile    = "params.safetensors"    // trainable tensors by Param.Name
	OptimizerFile = "optimizer.safetensors" // "<name>.exp_avg" and "<name>.exp_avg_sq"
	stateVersion  = 1
	maxStateBytes = 64 << 20
)

// OptimizerConfig records the hyperparameters a checkpoint was made with.
type OptimizerConfig struct {
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	MaxGradNorm float64 `json:"max_grad_norm"`
	GradAccum   int     `json:"gradient_accumulation_steps"`
	Seed        uint64  `json:"seed"`
}

// State is the JSON part of a checkpoint.
type State struct {
	Version       int                  `json:"version"`
	Step          int                  `json:"step"`           // updates completed
	OptimizerStep int                  `json:"optimizer_step"` // AdamW's t
	RNG           []byte               `json:"rng"`            // Loop.Rand's PCG state
	Data          json.RawMessage      `json:"data,omitempty"` // Hooks.State at this step
	NumTokens     float64              `json:"num_tokens"`
	Schedule      Schedule             `json:"schedule"`
	Optimizer     OptimizerConfig      `json:"optimizer"`
	MetricsTail   []map[string]float64 `json:"metrics_tail"`
	// LogInterval is the running average not yet logged; absent in
	// checkpoints written before it was saved, which resume with an empty
	// one.
	LogInterval LogInterval `json:"log_interval"`
}

// LogInterval holds the per-update metrics summed since the last
// metrics.jsonl record, so that a run resumed between two records logs the
// same averages as an uninterrupted one. Seconds, the compute time of those
// updates, only feeds tokens_per_second.
type LogInterval struct {
	Sums    map[string]float64 `json:"sums,omitempty"` // per-key sums over the updates (non-finite sums are dropped)
	Updates int                `json:"updates"`        // updates summed
	Seconds float64            `json:"seconds"`        // their compute time
}

// HasCheckpoint reports whether a stage directory holds a checkpoint.
func HasCheckpoint(dir string) bool {
	sd := StateDir(dir)
	for _, d := range []string{sd, sd + ".old"} {
		if _, err := os.Stat(filepath.Join(d, StateFile)); err == nil {
			return true
		}
	}
	return false
}

// LoadState reads the JSON state of a stage directory's checkpoint.
func LoadState(dir string) (*State, error) {
	sd := StateDir(dir)
	if err := atomicfile.Recover(sd); err != nil {
		return nil, err
	}
	path := filepath.Join(sd, StateFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: checkpoint: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxStateBytes {
		return nil, fmt.Errorf("train: checkpoint %s: %d bytes exceed the %d-byte limit", path, st.Size(), maxStateBytes)
	}
	var s State
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("train: checkpoint %s: %w", path, err)
	}
	switch {
	case s.Version != stateVersion:
		return nil, fmt.Errorf("train: checkpoint %s: version %d, want %d", path, s.Version, stateVersion)
	case s.Step < 0 || s.OptimizerStep < 0:
		return nil, fmt.Errorf("train: checkpoint %s: negative step", path)
	case s.LogInterval.Updates < 0 || s.LogInterval.Updates > s.Step || (s.LogInterval.Updates == 0 && len(s.LogInterval.Sums) > 0):
		return nil, fmt.Errorf("train: checkpoint %s: log interval of %d updates with %d sums at step %d", path, s.LogInterval.Updates, len(s.LogInterval.Sums), s.Step)
	}
	return &s, nil
}

// writeCheckpoint replaces <Dir>/state with the current parameters and
// moments and the snapshot s; the previous checkpoint stays in place until
// the new one is complete.
func (l *Loop) writeCheckpoint(s snapshot) error {
	st := State{
		Version: stateVersion, Step: l.step, OptimizerStep: l.opt.T, RNG: s.rng, Data: s.data,
		NumTokens: s.tokens, Schedule: l.Config.schedule(),
		Optimizer: OptimizerConfig{
			Beta1: l.Beta1, Beta2: l.Beta2, Eps: l.Eps, WeightDecay: l.WeightDecay,
			MaxGradNorm: l.MaxGradNorm, GradAccum: l.GradAccum, Seed: l.Seed,
		},
		MetricsTail: finiteRecords(l.tail),
		LogInterval: s.acc,
	}
	params := make([]safetensors.Tensor, len(l.Params))
	moments := make([]safetensors.Tensor, 0, 2*len(l.Params))
	for i, p := range l.Params {
		params[i] = safetensors.Tensor{Name: p.Name, Shape: p.shape(), Data: p.Value}
		moments = append(moments,
			safetensors.Tensor{Name: p.Name + ".exp_avg", Shape: p.shape(), Data: l.opt.M[i]},
			safetensors.Tensor{Name: p.Name + ".exp_avg_sq", Shape: p.shape(), Data: l.opt.V[i]})
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	err = atomicfile.ReplaceDir(StateDir(l.Dir), func(tmp string) error {
		if err := safetensors.WriteFile(filepath.Join(tmp, ParamsFile), params, nil, safetensors.F32); err != nil {
			return err
		}
		if err := safetensors.WriteFile(filepath.Join(tmp, OptimizerFile), moments, nil, safetensors.F32); err != nil {
			return err
		}
		if l.Hooks.SaveFiles != nil {
			if err := l.Hooks.SaveFiles(tmp); err != nil {
				return fmt.Errorf("saving stage files: %w", err)
			}
		}
		// The state file goes last: its presence marks a complete directory.
		return atomicfile.WriteBytes(filepath.Join(tmp, StateFile), append(raw, '\n'))
	})
	if err != nil {
		return fmt.Errorf("train: checkpoint at update %d: %w", l.step, err)
	}
	l.saved = l.step
	return nil
}

// finiteRecords drops non-finite values, which JSON cannot hold.
func finiteRecords(recs []map[string]float64) []map[string]float64 {
	out := make([]map[string]float64, len(recs))
	for i, r := range recs {
		c := make(map[string]float64, len(r))
		for k, v := range r {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				c[k] = v
			}
		}
		out[i] = c
	}
	return out
}

// Resume restores the loop from the checkpoint in <Dir>/state: parameter
// values, AdamW moments and step, the random source, the stage's position
// (through Hooks.Restore) and the metrics tail; metrics.jsonl lines past the
// checkpoint are dropped, so the continued run appends exactly what an
// uninterrupted run would have logged. It fails with an error wrapping
// fs.ErrNotExist when there is no checkpoint, and names any parameter that
// is missing, extra or of another shape.
func (l *Loop) Resume() error {
	if err := l.init(); err != nil {
		return err
	}
	st, err := LoadState(l.Dir)
	if err != nil {
		return err
	}
	sd := StateDir(l.Dir)
	pr, err := safetensors.Open(filepath.Join(sd, ParamsFile))
	if err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	defer pr.Close()
	or, err := safetensors.Open(filepath.Join(sd, OptimizerFile))
	if err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	defer or.Close()
	if len(pr.Tensors) != len(l.Params) {
		names := map[string]bool{}
		for _, p := range l.Params {
			names[p.Name] = true
		}
		for _, t := range pr.Tensors {
			if !names[t.Name] {
				return fmt.Errorf("train: resume: checkpoint holds parameter %s, which this run does not train", t.Name)
			}
		}
	}
	read := func(r *safetensors.Reader, name string, shape []int, dst []float32) error {
		info, ok := r.Info(name)
		if !ok {
			return fmt.Errorf("train: resume: checkpoint lacks %s", name)
		}
		if !slices.Equal(info.Shape, shape) {
			return fmt.Errorf("train: resume: %s has shape %v in the checkpoint, the run has %v", name, info.Shape, shape)
		}
		return r.ReadInto(name, dst)
	}
	for i, p := range l.Params {
		if err := read(pr, p.Name, p.shape(), p.Value); err != nil {
			return err
		}
		if err := read(or, p.Name+".exp_avg", p.shape(), l.opt.M[i]); err != nil {
			return err
		}
		if err := read(or, p.Name+".exp_avg_sq", p.shape(), l.opt.V[i]); err != nil {
			return err
		}
	}
	if err := l.pcg.UnmarshalBinary(st.RNG); err != nil {
		return fmt.Errorf("train: resume: random state: %w", err)
	}
	if len(st.Data) > 0 {
		if l.Hooks.Restore == nil {
			return errors.New("train: resume: the checkpoint holds a stage position but Hooks.Restore is not set")
		}
		if err := l.Hooks.Restore(st.Data); err != nil {
			return fmt.Errorf("train: resume: stage state: %w", err)
		}
	}
	l.opt.T = st.OptimizerStep
	l.step = st.Step
	l.tokens = st.NumTokens
	l.tail = st.MetricsTail
	l.acc = restoreInterval(st.LogInterval)
	l.saved = st.Step
	if err := truncateMetrics(MetricsFile(l.Dir), st.Step); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
