package dpo

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// DPO runs unchanged on a base with gotune's linear-time attention (here
// Gated Attention Units in chunks of 16 and linear attention), starting
// from an SFT adapter that covers their projections: after the merge, the
// first update's policy is the reference exactly (loss log 2, rewards 0),
// and the run trains to finite losses. The default targets name q_proj,
// which a GAU layer does not have: refused, naming the GAU's modules.
func TestDPOOnLinearTimeAttention(t *testing.T) {
	for _, att := range []string{model.AttentionGAU, model.AttentionLinear} {
		t.Run(att, func(t *testing.T) {
			tok := microTokenizer(t)
			c, err := model.WithAttention(microConfig(tok.VocabSize()), att)
			if err != nil {
				t.Fatal(err)
			}
			if c.GAU() {
				c.GAUChunk = 16
			}
			w, err := model.NewRandom(c, 2)
			if err != nil {
				t.Fatal(err)
			}
			base := saveBase(t, w, tok)
			out := filepath.Join(t.TempDir(), "dpo")
			cfg := testConfig("", out)
			cfg.SFTAdapter = sftAdapter(t, base)
			cfg.Train.Steps = 2
			cfg.LoRA.Targets = []string{"all-linear"} // the default q/k/v/o_proj: GAU has no q_proj
			if c.GAU() {
				bad := testConfig("", filepath.Join(t.TempDir(), "bad"))
				bad.SFTAdapter = cfg.SFTAdapter
				if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "z_proj") {
					t.Errorf("default targets on a GAU model: error %v, want one naming its modules", err)
				}
			}
			if _, err := Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			recs, err := train.ReadMetrics(train.MetricsFile(out))
			if err != nil {
				t.Fatal(err)
			}
			if recs[0]["loss"] != math.Ln2 || recs[0]["rewards/margins"] != 0 {
				t.Errorf("step 1 loss %.17g, margin %v; want log 2 and 0", recs[0]["loss"], recs[0]["rewards/margins"])
			}
			for _, r := range recs {
				if l, ok := r["loss"]; ok && (math.IsNaN(l) || math.IsInf(l, 0)) {
					t.Errorf("loss %v in %v", l, r)
				}
			}
		})
	}
}
