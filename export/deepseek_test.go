package export

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
)

// readJSONObject reads a JSON object keeping each value's raw bytes.
func readJSONObject(t *testing.T, path string) map[string]json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// sameJSON reports whether two JSON values are equal as decoded values.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// logits64 is logits computed in float64: DeepSeek's routed experts
// (scaled by routed_scaling_factor) and a large adapter amplify float32
// rounding to ~2e-5 of the logits' scale, which would hide a merge error
// of that size; in float64 what remains is the merged weights' float32
// rounding.
func logits64(t *testing.T, w *model.Weights, a *lora.Adapter) []float32 {
	opt := model.GraphOptions{B: 2, T: 9, Dtype: tensor.Float64}
	if a != nil {
		opt.Hook = a.Hook()
	}
	return tinymodel.Logits(t, w, opt)
}

// A merged export of a DeepSeek base (deepseek_v2: plain q_proj, softmax
// greedy routing; deepseek_v3: compressed queries, sigmoid noaux_tc routing
// with a correction bias) with an adapter on the latent-attention
// projections, the routed and shared experts and the dense first layer
// keeps the family: config.json holds every key of the base's, DeepSeek's
// MLA and MoE keys included, with the same values, and the reloaded model
// gives the logits of the base with the live adapter within 1e-5.
func TestMergedExportKeepsDeepSeek(t *testing.T) {
	for _, v3 := range []bool{false, true} {
		w, tok := tinymodel.DeepSeek(t, v3, 6, 32, "<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>")
		name := w.Config.ModelType
		root := t.TempDir()
		baseDir, adapterDir, out := filepath.Join(root, "base"), filepath.Join(root, "adapter"), filepath.Join(root, "merged")
		if err := hf.SaveModel(baseDir, w, hf.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := tok.Save(baseDir); err != nil {
			t.Fatal(err)
		}
		a := trainedAdapter(t, w, "all-linear")
		adapted := map[string]bool{}
		for _, m := range a.Modules {
			adapted[m.Name] = true
		}
		want := []string{"kv_a_proj_with_mqa", "kv_b_proj", "o_proj", "experts.3.down_proj", "shared_experts.gate_proj", "gate_proj"}
		if v3 {
			want = append(want, "q_a_proj", "q_b_proj")
		} else {
			want = append(want, "q_proj")
		}
		for _, m := range want {
			if !adapted[m] {
				t.Fatalf("%s: all-linear has no adapter on %s (modules %v)", name, m, adapted)
			}
		}
		if err := a.Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
			t.Fatal(err)
		}
		base, live := logits64(t, w, nil), logits64(t, w, a)
		if tinymodel.MaxRelDiff(base, live) < 1e-3 {
			t.Fatalf("%s: the adapter does not change the logits; the test would prove nothing", name)
		}

		cfg := DefaultConfig()
		cfg.Adapter, cfg.Out = adapterDir, out
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		merged, err := hf.LoadModel(out)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(merged.Config.DeepSeek, w.Config.DeepSeek) || merged.Config.ModelType != name {
			t.Errorf("%s: merged config %+v %+v, want %+v", name, merged.Config, merged.Config.DeepSeek, w.Config.DeepSeek)
		}
		d := tinymodel.MaxRelDiff(live, logits64(t, merged, nil))
		if d > 1e-5 {
			t.Errorf("%s: merged logits differ from base+adapter by %.3g relative (want ≤ 1e-5)", name, d)
		}
		t.Logf("%s: merged vs live adapter %.2g relative (the adapter moves the logits by %.2g)", name, d, tinymodel.MaxRelDiff(base, live))
		if w.Layers[1].RouterBias != nil {
			if !reflect.DeepEqual(model.F32(merged.Layers[1].RouterBias), model.F32(w.Layers[1].RouterBias)) {
				t.Errorf("%s: the correction bias changed in the export", name)
			}
		}

		baseCfg := readJSONObject(t, filepath.Join(baseDir, "config.json"))
		outCfg := readJSONObject(t, filepath.Join(out, "config.json"))
		var deepseekKeys []string
		ty := reflect.TypeOf(model.DeepSeek{})
		for i := range ty.NumField() {
			deepseekKeys = append(deepseekKeys, strings.Split(ty.Field(i).Tag.Get("json"), ",")[0])
		}
		for _, k := range deepseekKeys {
			if _, ok := baseCfg[k]; !ok {
				t.Errorf("%s: the base config.json lacks %s", name, k)
			}
		}
		for k, v := range baseCfg {
			if got, ok := outCfg[k]; !ok {
				t.Errorf("%s: merged config.json lacks %s", name, k)
			} else if !sameJSON(got, v) {
				t.Errorf("%s: merged config.json has %s = %s, the base %s", name, k, got, v)
			}
		}
	}
}
