package sft

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/pretrain"
)

// SFT with LoRA on every linear module runs unchanged on models with
// gotune's linear-time attention: linear attention and Gated Attention
// Units (whose u_proj, v_proj, z_proj and o_proj get adapters; chunk 16,
// so that the rows span several chunks). The loss stays finite and every
// adapter's B, which starts at zero, has been trained: gradients reach
// every projection through the fused attention operations.
func TestSFTOnLinearTimeAttention(t *testing.T) {
	for _, att := range []string{model.AttentionLinear, model.AttentionGAU} {
		t.Run(att, func(t *testing.T) {
			w, tok := tinymodel.Weights(t, 3, 256, pretrain.Specials...)
			c, err := model.WithAttention(w.Config, att)
			if err != nil {
				t.Fatal(err)
			}
			if c.GAU() {
				c.GAUChunk = 16
			}
			if w, err = model.NewRandom(c, 3); err != nil {
				t.Fatal(err)
			}
			base := filepath.Join(t.TempDir(), "base")
			tinymodel.Save(t, base, w, tok)
			cfg := moeConfig(base, filepath.Join(t.TempDir(), "out"), 0)
			recs := runMetrics(t, cfg)
			first, last := recs[0]["loss"], recs[len(recs)-1]["loss"]
			if math.IsNaN(first) || math.IsInf(first, 0) || math.IsNaN(last) || math.IsInf(last, 0) {
				t.Fatalf("loss %v → %v", first, last)
			}
			a, _, _, err := lora.Load(filepath.Join(cfg.Out, "adapter"), w)
			if err != nil {
				t.Fatal(err)
			}
			want := model.LinearModules
			if c.GAU() {
				want = model.GAUModules
			}
			for _, m := range want {
				for l := range c.NumHiddenLayers {
					mod := a.Module(l, m)
					if mod == nil {
						t.Fatalf("adapter lacks layer %d %s", l, m)
					}
					var norm float64
					for _, v := range model.F32(mod.B) {
						norm += float64(v) * float64(v)
					}
					if norm == 0 {
						t.Errorf("layer %d %s: B is still zero", l, m)
					}
				}
			}
			t.Logf("%s: loss %.4f → %.4f", att, first, last)

			// Packing has no block-diagonal form here: refused by name.
			cfg = moeConfig(base, filepath.Join(t.TempDir(), "packed"), 0)
			cfg.Packing, cfg.Buckets = true, nil
			if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "packed rows with gotune_attention") {
				t.Errorf("packing on %s: %v", att, err)
			}
		})
	}
}
