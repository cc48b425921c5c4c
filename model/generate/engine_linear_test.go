package generate

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// linearTimeFixtures are the reference cases of gotune's linear-time
// attention options (GAU's chunk is 5 positions).
var linearTimeFixtures = []string{"llama_linear_attention", "llama_gau"}

// The constant-size states across calls: two sequences fed in pieces, in
// shared forward calls mixing prefill and decode rows and crossing GAU's
// chunk boundaries, give at every position the graph's logits over the
// whole sequence; the state does not grow with the position.
func TestLinearTimeStateAcrossCalls(t *testing.T) {
	for _, name := range linearTimeFixtures {
		t.Run(name, func(t *testing.T) {
			_, w := loadRefFixture(t, "../testdata/reference/"+name)
			V := w.Config.VocabSize
			r := rand.New(rand.NewPCG(8, 9))
			seqs := [][]int{randTokens(r, 23, V), randTokens(r, 14, V)}
			e, err := New(w, nil)
			if err != nil {
				t.Fatal(err)
			}
			if e.CacheBytesPerToken() != 0 || e.StateBytes() <= 0 {
				t.Fatalf("cache %d bytes per token, state %d bytes", e.CacheBytesPerToken(), e.StateBytes())
			}
			states := []*State{e.NewState(), e.NewState()}
			got := [][]float32{nil, nil}
			for _, cut := range [][2]int{{12, 5}, {13, 10}, {20, 11}, {21, 12}, {22, 13}, {23, 14}} {
				feeds := make([][]int, 2)
				for i, st := range states {
					feeds[i] = seqs[i][st.Len():cut[i]]
				}
				out, err := e.ForwardAll(states, feeds)
				if err != nil {
					t.Fatal(err)
				}
				for i := range out {
					got[i] = append(got[i], out[i]...)
				}
			}
			for l := range states[0].k {
				if n := 4 * (len(states[0].k[l]) + len(states[0].v[l])) * w.Config.NumHiddenLayers; n != e.StateBytes() {
					t.Fatalf("layer %d state holds %d bytes (× layers), want %d", l, n, e.StateBytes())
				}
			}
			for i, seq := range seqs {
				want := graphLogits(t, w, seq)
				if len(got[i]) != len(want) {
					t.Fatalf("sequence %d: %d logits, want %d", i, len(got[i]), len(want))
				}
				var scale, worst float64
				for j, v := range want {
					scale = math.Max(scale, math.Abs(float64(v)))
					worst = math.Max(worst, math.Abs(float64(v-got[i][j])))
				}
				if worst > 1e-4*scale {
					t.Fatalf("sequence %d: engine vs graph max relative deviation %.2g", i, worst/scale)
				}
			}

			// Reset (and reuse) starts over; a copied state continues alike;
			// truncation into the running sums is refused.
			st := states[0]
			st.Reset()
			out, err := e.ForwardAll([]*State{st}, [][]int{seqs[1]})
			if err != nil {
				t.Fatal(err)
			}
			for j, v := range out[0] {
				// fed whole now, in pieces then: same sums, other rounding
				if math.Abs(float64(v-got[1][j])) > 1e-5*math.Max(1, math.Abs(float64(v))) {
					t.Fatalf("after Reset, logit %d = %v, want %v", j, v, got[1][j])
				}
			}
			cp := e.NewState()
			cp.CopyFrom(states[1])
			a, _ := e.Forward([]*State{cp}, [][]int{{3}})
			a0 := append([]float32(nil), a[0]...)
			b, _ := e.Forward([]*State{states[1]}, [][]int{{3}})
			for j := range a0 {
				if a0[j] != b[0][j] {
					t.Fatalf("copied state: logit %d = %v, original %v", j, a0[j], b[0][j])
				}
			}
			func() {
				defer func() {
					if r := recover(); r == nil || !strings.Contains(r.(string), "cannot be truncated") {
						t.Errorf("truncating a running sum: %v", r)
					}
				}()
				st.Truncate(3)
			}()
			if _, err := e.Generate(context.Background(), []Request{{Prompt: seqs[0][:3], Options: Options{MaxTokens: 4, IgnoreEOS: true}}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
