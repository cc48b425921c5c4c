package dpo

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"

	"github.com/gotune/gotune/checkpoints"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
	"github.com/gotune/gotune/world"
)

// sftBase trains a micro model on world instructions (full fine-tune).
func sftBase(t testing.TB, seed uint64, steps int) string {
	tok := microTokenizer(t)
	w, _ := model.NewRandom(microConfig(tok.VocabSize()), seed)
	enc := &encoder{tok: tok}
	var exs []data.Example
	for _, in := range world.New(11).Instructions(world.Train, 2000) {
		exs = append(exs, enc.join(tok.Encode(world.FormatAlpaca(in.Instruction, in.Input), true), in.Output))
	}
	const B, T = 8, 64
	g, err := model.Build(w, model.GraphOptions{B: B, T: T, Trainable: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	wv := g.InputVector("weights", B*T)
	loss := g.MeanNLL(wv)
	var nodes []*G.Node
	var vals [][]float32
	var sizes []int
	var decay []bool
	for _, n := range w.Named() {
		nodes = append(nodes, g.Params[n.Name])
		vals = append(vals, model.F32(n.Tensor))
		sizes = append(sizes, len(model.F32(n.Tensor)))
		decay = append(decay, false)
	}
	prog, err := g.Compile(loss, nodes, loss)
	if err != nil {
		t.Fatal(err)
	}
	opt := train.NewAdamW(0.9, 0.95, 1e-8, 0, sizes)
	k := 0
	for s := 0; s < steps; s++ {
		b := data.Collate(exs[k:k+B], T, tok.PAD())
		k = (k + B) % (len(exs) - B)
		copy(g.In.Tokens, b.Inputs)
		copy(g.In.Targets, b.Targets)
		for i := range b.Weights {
			g.Vector("weights")[i] = 0
			if b.Inputs[i] != int32(tok.PAD()) || i%T == 0 {
				g.Vector("weights")[i] = 1
			}
		}
		prog.ZeroGrad()
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		grads := make([][]float32, len(nodes))
		for i, n := range nodes {
			grads[i] = prog.Grad(n)
		}
		train.ClipGlobalNorm(grads, 1)
		opt.Update(vals, grads, decay, 3e-3)
		if s%50 == 0 {
			fmt.Println("sft", s, model.Value32(loss)[0])
		}
	}
	dir := filepath.Join(t.TempDir(), "base")
	checkpoints.SaveModel(dir, w, checkpoints.SaveOptions{})
	tok.Save(dir)
	return dir
}

func TestExplore2(t *testing.T) {
	t0 := time.Now()
	base := sftBase(t, 1, int(envs("SSTEPS", "150")[0]))
	fmt.Println("sft time", time.Since(t0))
	for _, seed := range envs("SEEDS", "1,2,3") {
		for _, lr := range envs("LRS", "3e-3") {
			for _, beta := range envs("BETAS", "0.1") {
				cfg := testConfig(base, filepath.Join(t.TempDir(), "out"))
				cfg.WorldSeed = int64(seed)
				cfg.WorldPairs, cfg.WorldEvalPairs = 1000, int(envs("NE", "96")[0])
				cfg.Pairs = int(envs("P", "8")[0])
				cfg.LoRA = lora.Config{R: 8, Alpha: 16, Targets: []string{"all-linear"}, Seed: 1}
				cfg.Train.Steps, cfg.Train.LR, cfg.Train.WarmupSteps = int(envs("STEPS", "100")[0]), lr, 5
				cfg.Loss.Beta = beta
				cfg.Train.LogEvery, cfg.Train.EvalEvery = 50, 1000
				t0 := time.Now()
				res, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				ev := res.Eval
				fmt.Printf("seed %v lr %v beta %v: acc %.3f margin %.4f loss %.4f pol %.3f ref %.3f (%v)\n", seed, lr, beta, ev.Metrics.RewardsAccuracies, ev.Metrics.RewardsMargins, ev.Metrics.Loss, ev.PolicyPrefersChosen, ev.ReferencePrefersChosen, time.Since(t0))
			}
		}
	}
}
