package generate

import (
	"context"
	"math"
	"slices"
	"testing"
)

// GenerateShared prefills each distinct prompt once and continues it in
// every request of that prompt: the results equal Generate's, token for
// token, with the same log-probabilities (up to summation order), also for
// a request that stops at its first token and for a mix of prompts.
func TestGenerateSharedMatchesGenerate(t *testing.T) {
	e := testEngine(t, 13)
	a, b := e.tok.Encode("Once upon", true), e.tok.Encode("The cat", true)
	var reqs []Request
	for i := range 7 {
		p := a
		if i%3 == 2 {
			p = b
		}
		o := Options{MaxTokens: 16, Temperature: 1.1, TopP: 0.9, Seed: uint64(i + 1), LogProbs: true, IgnoreEOS: true}
		if i == 4 {
			o.MaxTokens = 1
		}
		reqs = append(reqs, Request{Prompt: slices.Clone(p), Options: o})
	}
	want, err := e.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.GenerateShared(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	distinct := 0
	for i := range reqs {
		if !slices.Equal(got[i].Tokens, want[i].Tokens) || got[i].FinishReason != want[i].FinishReason {
			t.Fatalf("request %d: shared %v (%s), alone %v (%s)", i, got[i].Tokens, got[i].FinishReason, want[i].Tokens, want[i].FinishReason)
		}
		for j := range got[i].LogProbs {
			if math.Abs(float64(got[i].LogProbs[j]-want[i].LogProbs[j])) > 1e-4 {
				t.Fatalf("request %d token %d: log-prob %v shared, %v alone", i, j, got[i].LogProbs[j], want[i].LogProbs[j])
			}
		}
		if i > 0 && !slices.Equal(got[i].Tokens, got[0].Tokens) {
			distinct++
		}
	}
	if len(got[4].Tokens) != 1 {
		t.Fatalf("request 4 of MaxTokens 1 gave %d tokens", len(got[4].Tokens))
	}
	if distinct == 0 {
		t.Fatal("every request gave the same tokens: the seeds are not used")
	}
}
