package hf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/model"
)

func microConfig(tied, bias bool) model.Config {
	c, _ := model.Preset("tiny", 40)
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 16, 24, 2
	c.NumAttentionHeads, c.NumKeyValueHeads = 4, 2
	c.TieWordEmbeddings, c.AttentionBias = tied, bias
	c.BOSTokenID, c.EOSTokenID = 1, 2
	if bias {
		c.ModelType = "qwen2"
	}
	return c
}

func TestSaveLoadModel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tied, bias bool
		dtype      safetensors.Dtype
		shard      int64
	}{
		{"tied-f32", true, false, safetensors.F32, 0},
		{"untied-bias-f32", false, true, safetensors.F32, 0},
		{"untied-f16", false, false, safetensors.F16, 0},
		{"tied-bf16-sharded", true, false, safetensors.BF16, 3000},
		{"untied-f32-sharded", false, true, safetensors.F32, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := model.NewRandom(microConfig(tc.tied, tc.bias), 3)
			if err != nil {
				t.Fatal(err)
			}
			// Put non-trivial values into the 1-D tensors too.
			for i, n := range w.Named() {
				if n.Tensor.Dims() == 1 {
					for j := range model.F32(n.Tensor) {
						model.F32(n.Tensor)[j] = 1 + float32(i*j)/100
					}
				}
			}
			dir := t.TempDir()
			if err := SaveModel(dir, w, SaveOptions{Dtype: tc.dtype, MaxShardBytes: tc.shard}); err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "model.safetensors.index.json"))
			if (tc.shard > 0) != (statErr == nil) {
				t.Errorf("index present = %v, want %v", statErr == nil, tc.shard > 0)
			}
			got, err := LoadModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.Config.TorchDtype != torchDtype(tc.dtype) || got.Config.TieWordEmbeddings != tc.tied || got.Config.AttentionBias != tc.bias {
				t.Errorf("config round trip: %+v", got.Config)
			}
			wantNames, gotNames := names(w), names(got)
			if !slices.Equal(wantNames, gotNames) {
				t.Fatalf("names %v, want %v", gotNames, wantNames)
			}
			if tc.tied == slices.Contains(gotNames, "lm_head.weight") {
				t.Errorf("lm_head.weight present with tied=%v", tc.tied)
			}
			for i, n := range w.Named() {
				a, b := model.F32(n.Tensor), model.F32(got.Named()[i].Tensor)
				for j := range a {
					want := a[j]
					switch tc.dtype {
					case safetensors.F16:
						want = safetensors.F16ToF32(safetensors.F32ToF16(want))
					case safetensors.BF16:
						want = safetensors.BF16ToF32(safetensors.F32ToBF16(want))
					}
					if b[j] != want {
						t.Fatalf("%s[%d] = %g, want %g", n.Name, j, b[j], want)
					}
				}
			}
			if tc.tied && got.LMHead != got.Embed {
				t.Error("tied head is not the embedding tensor")
			}
			var gen map[string]any
			raw, err := os.ReadFile(filepath.Join(dir, GenerationConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &gen); err != nil || gen["bos_token_id"] != 1.0 || gen["eos_token_id"] != 2.0 {
				t.Errorf("generation_config.json = %s (%v)", raw, err)
			}
		})
	}
}

func names(w *model.Weights) []string {
	var out []string
	for _, n := range w.Named() {
		out = append(out, n.Name)
	}
	return out
}

func TestLoadModelErrors(t *testing.T) {
	w, err := model.NewRandom(microConfig(false, false), 1)
	if err != nil {
		t.Fatal(err)
	}
	// A set missing one tensor, and one with a mis-shaped tensor.
	write := func(dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
		if err := SaveModel(dir, w, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		var ts []safetensors.Tensor
		for _, n := range w.Named() {
			ts = append(ts, safetensors.Tensor{Name: n.Name, Shape: []int(n.Tensor.Shape()), Data: model.F32(n.Tensor)})
		}
		if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), edit(ts), nil, safetensors.F32); err != nil {
			t.Fatal(err)
		}
	}
	missing := t.TempDir()
	write(missing, func(ts []safetensors.Tensor) []safetensors.Tensor {
		return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == "model.layers.1.mlp.up_proj.weight" })
	})
	if _, err := LoadModel(missing); err == nil || !strings.Contains(err.Error(), "model.layers.1.mlp.up_proj.weight is missing") {
		t.Errorf("missing tensor: %v", err)
	}
	shaped := t.TempDir()
	write(shaped, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i := range ts {
			if ts[i].Name == "model.layers.0.self_attn.k_proj.weight" {
				ts[i].Shape = []int{ts[i].Shape[1], ts[i].Shape[0]}
			}
		}
		return ts
	})
	if _, err := LoadModel(shaped); err == nil || !strings.Contains(err.Error(), "model.layers.0.self_attn.k_proj.weight has shape [16 8], the config needs [8 16]") {
		t.Errorf("mis-shaped tensor: %v", err)
	}
	// Extra tensors are ignored.
	extra := t.TempDir()
	write(extra, func(ts []safetensors.Tensor) []safetensors.Tensor {
		return append(ts, safetensors.Tensor{Name: "model.layers.0.self_attn.rotary_emb.inv_freq", Shape: []int{2}, Data: []float32{1, 2}})
	})
	if _, err := LoadModel(extra); err != nil {
		t.Errorf("extra tensor: %v", err)
	}
	if _, err := LoadModel(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config") {
		t.Errorf("empty dir: %v", err)
	}
	if err := SaveModel(t.TempDir(), w, SaveOptions{Dtype: safetensors.I64}); err == nil {
		t.Error("saved as I64")
	}
}
