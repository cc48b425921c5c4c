package generate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func testEngine(t *testing.T, seed uint64) *Engine {
	t.Helper()
	e, err := New(randomWeights(t, testConfig(t), seed), newByteTok())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Greedy decoding picks, at every step, the argmax of the logits that a
// full recompute of the whole sequence so far gives.
func TestGreedyEqualsArgmaxOfFullForward(t *testing.T) {
	e := testEngine(t, 11)
	prompt := e.tok.Encode("The cat", true)
	res, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: 20, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	got := res[0].Tokens
	if len(got) != 20 || res[0].FinishReason != FinishLength {
		t.Fatalf("got %d tokens, finish %q; want 20, length", len(got), res[0].FinishReason)
	}
	full := append(slices.Clone(prompt), got...)
	ref := refLogits(e.w, full, nil)
	for i, tok := range got {
		row := ref[len(prompt)-1+i]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if tok != best {
			t.Fatalf("step %d: greedy chose %d, full forward's argmax is %d", i, tok, best)
		}
	}
}

func TestSeededSamplingIsReproducible(t *testing.T) {
	e := testEngine(t, 12)
	prompt := e.tok.Encode("Once", true)
	run := func(seed uint64) []int {
		opt := Options{MaxTokens: 24, Temperature: 1.3, TopK: 50, TopP: 0.95, RepetitionPenalty: 1.2, Seed: seed, IgnoreEOS: true}
		res, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: opt}, {Prompt: prompt[:2], Options: opt}})
		if err != nil {
			t.Fatal(err)
		}
		return append(res[0].Tokens, res[1].Tokens...)
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different outputs:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 1 and 2 gave the same %d tokens", len(a))
	}
	// A request's output does not depend on what it is batched with.
	opt := Options{MaxTokens: 24, Temperature: 1.3, TopK: 50, TopP: 0.95, RepetitionPenalty: 1.2, Seed: 1, IgnoreEOS: true}
	alone, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: opt}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(alone[0].Tokens, a[:24]) {
		t.Fatalf("batched %v\nalone   %v", a[:24], alone[0].Tokens)
	}
}

// The sampler draws from softmax(logits/T) restricted by top-k and top-p.
func TestSamplerDistribution(t *testing.T) {
	logits := []float32{2, 1, 0.5, 0, -1, 3}
	probs := func(T float64, keep []int) map[int]float64 {
		p := map[int]float64{}
		var z float64
		for _, i := range keep {
			p[i] = math.Exp(float64(logits[i]) / T)
			z += p[i]
		}
		for i := range p {
			p[i] /= z
		}
		return p
	}
	cases := []struct {
		name string
		opt  Options
		want map[int]float64
	}{
		{"temperature", Options{Temperature: 1}, probs(1, []int{0, 1, 2, 3, 4, 5})},
		{"hot", Options{Temperature: 2}, probs(2, []int{0, 1, 2, 3, 4, 5})},
		{"top-k", Options{Temperature: 1, TopK: 3}, probs(1, []int{5, 0, 1})},
		// softmax: 3→.63, 2→.23, 1→.086, ...: the nucleus of 0.8 is {5, 0}.
		{"top-p", Options{Temperature: 1, TopP: 0.8}, probs(1, []int{5, 0})},
		{"top-k then top-p", Options{Temperature: 1, TopK: 4, TopP: 0.9}, probs(1, []int{5, 0, 1})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opt.Seed = 3
			s := newSampler(c.opt, len(logits), nil)
			const n = 40000
			count := map[int]int{}
			buf := make([]float32, len(logits))
			for range n {
				copy(buf, logits)
				tok, _ := s.next(buf)
				count[tok]++
			}
			for tok, k := range count {
				if _, ok := c.want[tok]; !ok {
					t.Fatalf("token %d drawn %d times, outside the allowed set %v", tok, k, c.want)
				}
			}
			for tok, p := range c.want {
				got := float64(count[tok]) / n
				sd := math.Sqrt(p * (1 - p) / n)
				if math.Abs(got-p) > 5*sd+1e-3 {
					t.Errorf("token %d: frequency %.4f, want %.4f", tok, got, p)
				}
			}
		})
	}
}

func TestSamplerRepetitionPenaltyAndLogProbs(t *testing.T) {
	// Token 0 (seen, positive logit) is divided by θ = 2, token 1 (seen,
	// negative) multiplied: greedy moves from 0 to 2.
	s := newSampler(Options{RepetitionPenalty: 2, LogProbs: true}, 4, []int{0, 1})
	logits := []float32{3, -0.5, 2, -1}
	tok, lp := s.next(slices.Clone(logits))
	if tok != 2 {
		t.Fatalf("greedy with penalty chose %d, want 2", tok)
	}
	lse := math.Log(math.Exp(3) + math.Exp(-0.5) + math.Exp(2) + math.Exp(-1))
	if want := 2 - lse; math.Abs(float64(lp)-want) > 1e-5 {
		t.Fatalf("log-probability %g, want %g (under the unpenalised model)", lp, want)
	}
	// Now 2 is seen too; 2/2 = 1 < 1.5 = 3/2, so 0 wins again.
	if tok, _ := s.next(slices.Clone(logits)); tok != 0 {
		t.Fatalf("second pick %d, want 0", tok)
	}
	// Without a penalty greedy is the plain argmax.
	if tok, _ := newSampler(Options{}, 4, []int{0}).next(slices.Clone(logits)); tok != 0 {
		t.Fatalf("greedy chose %d, want 0", tok)
	}
}

func TestSelectTop(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 1 + r.IntN(60)
		c := make([]cand, n)
		for i := range c {
			c[i] = cand{i, float32(r.IntN(10))} // many ties
		}
		k := 1 + r.IntN(n)
		sorted := slices.Clone(c)
		slices.SortFunc(sorted, byProbDesc)
		selectTop(c, k)
		got := slices.Clone(c[:k])
		slices.SortFunc(got, byProbDesc)
		if !slices.Equal(got, sorted[:k]) {
			t.Fatalf("trial %d: top %d of %d: got %v, want %v", trial, k, n, got, sorted[:k])
		}
	}
}

// Stop strings cut the text before their first occurrence, even when it
// spans several tokens, and streamed deltas never show any part of it.
func TestStopStringsAndStreaming(t *testing.T) {
	e := testEngine(t, 13)
	prompt := e.tok.Encode("ab", true)
	opt := Options{MaxTokens: 40, Temperature: 0.9, Seed: 5, IgnoreEOS: true}
	free, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: opt}})
	if err != nil {
		t.Fatal(err)
	}
	text := free[0].Text
	if len(text) < 12 {
		t.Fatalf("too little text to cut: %q", text)
	}
	// A stop string that starts at byte 6 of the free-running output.
	stop := text[6:9]
	first := strings.Index(text, stop)
	var streamed strings.Builder
	var deltas int
	opt.Stop = []string{"\x00never", stop}
	res, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: opt, OnText: func(d string) {
		if strings.Contains(streamed.String()+d, stop) {
			t.Errorf("streamed text %q shows the stop string", streamed.String()+d)
		}
		streamed.WriteString(d)
		deltas++
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != text[:first] || res[0].FinishReason != FinishStop {
		t.Fatalf("text %q finish %q; want %q, stop", res[0].Text, res[0].FinishReason, text[:first])
	}
	if streamed.String() != res[0].Text {
		t.Fatalf("streamed %q, result %q", streamed.String(), res[0].Text)
	}
	if first > 1 && deltas < 2 {
		t.Fatalf("text arrived in %d delta(s), not as it was made", deltas)
	}
	// Without stop strings the stream is the whole text.
	streamed.Reset()
	res, err = e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: 40, Temperature: 0.9, Seed: 5, IgnoreEOS: true}, OnText: func(d string) { streamed.WriteString(d) }}})
	if err != nil {
		t.Fatal(err)
	}
	if streamed.String() != text || res[0].Text != text {
		t.Fatalf("stream %q, text %q, want %q", streamed.String(), res[0].Text, text)
	}
}

// Streaming holds back a character whose bytes are not all out yet.
func TestStreamHoldsIncompleteUTF8(t *testing.T) {
	var got []string
	s := &seq{req: &Request{OnText: func(d string) { got = append(got, d) }}}
	for _, text := range []string{"a", "a\uFFFD", "aé", "aé\uFFFD\uFFFD", "aé€"} {
		s.res.Text = text
		s.stream(false)
	}
	if want := []string{"a", "é", "€"}; !slices.Equal(got, want) {
		t.Fatalf("deltas %q, want %q", got, want)
	}
}

func TestEOSAndStopTokensEndSequences(t *testing.T) {
	e := testEngine(t, 14)
	prompt := e.tok.Encode("x", true)
	free, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: 10, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	stopAt := free[0].Tokens[4]
	res, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: 10, StopTokens: []int{stopAt}, LogProbs: true}}})
	if err != nil {
		t.Fatal(err)
	}
	want := free[0].Tokens[:slices.Index(free[0].Tokens, stopAt)]
	if !slices.Equal(res[0].Tokens, want) || res[0].FinishReason != FinishStop {
		t.Fatalf("tokens %v finish %q; want %v, stop", res[0].Tokens, res[0].FinishReason, want)
	}
	if len(res[0].LogProbs) != len(res[0].Tokens) {
		t.Fatalf("%d log-probabilities for %d tokens", len(res[0].LogProbs), len(res[0].Tokens))
	}
	for _, lp := range res[0].LogProbs {
		if !(lp <= 0) {
			t.Fatalf("log-probability %g > 0", lp)
		}
	}
	// The tokenizer's EOS ends a sequence the same way, unless ignored.
	e.tok = &byteTok{eos: stopAt}
	res, err = e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res[0].Tokens, want) || res[0].FinishReason != FinishStop {
		t.Fatalf("EOS: tokens %v finish %q; want %v, stop", res[0].Tokens, res[0].FinishReason, want)
	}
	res, err = e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: 10, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res[0].Tokens, free[0].Tokens) {
		t.Fatalf("IgnoreEOS: %v, want %v", res[0].Tokens, free[0].Tokens)
	}
}

func TestRequestErrors(t *testing.T) {
	e := testEngine(t, 15)
	ctx := context.Background()
	bad := []Request{
		{Prompt: nil},
		{Prompt: []int{1}, Options: Options{Temperature: -1}},
		{Prompt: []int{1}, Options: Options{TopP: 1.5}},
		{Prompt: []int{1}, Options: Options{TopK: -2}},
		{Prompt: []int{1}, Options: Options{MaxTokens: -2}},
		{Prompt: []int{1}, Options: Options{RepetitionPenalty: -1}},
		{Prompt: []int{1}, Options: Options{Stop: []string{""}}},
		{Prompt: []int{9999}},
		{Prompt: make([]int, e.maxPos)},
	}
	for i, r := range bad {
		if _, err := e.Generate(ctx, []Request{r}); err == nil {
			t.Errorf("case %d: request accepted", i)
		}
	}
	plain, err := New(e.w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Generate(ctx, []Request{{Prompt: []int{1}, Options: Options{Stop: []string{"x"}}}}); err == nil {
		t.Error("stop strings without a tokenizer accepted")
	}
	// Generation stops at the model's context, not past it.
	res, err := e.Generate(ctx, []Request{{Prompt: make([]int, e.maxPos-3), Options: Options{MaxTokens: 50, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Tokens) != 3 || res[0].FinishReason != FinishLength {
		t.Fatalf("near the context end: %d tokens, %q", len(res[0].Tokens), res[0].FinishReason)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Generate(cctx, []Request{{Prompt: []int{1}}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// Concurrent callers of a Scheduler get what Generate gives each alone.
func TestSchedulerMatchesGenerate(t *testing.T) {
	e := testEngine(t, 16)
	ctx, cancel := context.WithCancel(context.Background())
	s := NewScheduler(e, 3)
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	const n = 7
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Prompt: e.tok.Encode(fmt.Sprintf("prompt %d", i*i), true),
			Options: Options{MaxTokens: 5 + 3*i, Temperature: 0.8, Seed: uint64(i), IgnoreEOS: true}}
	}
	got := make([]Result, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if got[i], err = s.Generate(ctx, reqs[i]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, r := range reqs {
		want, err := e.Generate(context.Background(), []Request{r})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[i].Tokens, want[0].Tokens) || got[i].Text != want[0].Text {
			t.Errorf("request %d: scheduler %v, alone %v", i, got[i].Tokens, want[0].Tokens)
		}
	}
	// A bad request fails alone.
	if _, err := s.Generate(ctx, Request{}); err == nil {
		t.Error("empty prompt accepted")
	}
	// A withdrawn request returns at once.
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer rcancel()
	if _, err := s.Generate(rctx, Request{Prompt: []int{1}, Options: Options{MaxTokens: 90, IgnoreEOS: true}, OnText: func(string) { time.Sleep(time.Millisecond) }}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("withdrawn request: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if _, err := s.Generate(context.Background(), Request{Prompt: []int{1}}); !errors.Is(err, ErrStopped) {
		t.Fatalf("after stop: %v", err)
	}
}

// TestOptionsValidate: every option out of range is an error naming its
// key; ValidateExplicit also refuses the zeros that Validate takes for
// "default" or "off".
func TestOptionsValidate(t *testing.T) {
	d := DefaultOptions()
	if err := d.ValidateExplicit(); err != nil {
		t.Fatalf("default options: %v", err)
	}
	var zero Options
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	cases := []struct {
		key      string
		set      func(*Options)
		explicit bool // only ValidateExplicit refuses it
	}{
		{KeyMaxTokens, func(o *Options) { o.MaxTokens = -1 }, false},
		{KeyMaxTokens, func(o *Options) { o.MaxTokens = 0 }, true},
		{KeyTemperature, func(o *Options) { o.Temperature = -0.5 }, false},
		{KeyTopK, func(o *Options) { o.TopK = -1 }, false},
		{KeyTopP, func(o *Options) { o.TopP = 1.5 }, false},
		{KeyTopP, func(o *Options) { o.TopP = -0.1 }, false},
		{KeyTopP, func(o *Options) { o.TopP = 0 }, true},
		{KeyRepetitionPenalty, func(o *Options) { o.RepetitionPenalty = -1 }, false},
		{KeyRepetitionPenalty, func(o *Options) { o.RepetitionPenalty = 0 }, true},
		{KeyStop, func(o *Options) { o.Stop = []string{"x", ""} }, false},
	}
	for _, c := range cases {
		o := DefaultOptions()
		c.set(&o)
		if err := o.ValidateExplicit(); err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%+v: ValidateExplicit error %v does not name %s", o, err, c.key)
		}
		err := o.Validate()
		if c.explicit && err != nil {
			t.Errorf("%+v: Validate refused a zero that means default or off: %v", o, err)
		}
		if !c.explicit && (err == nil || !strings.Contains(err.Error(), c.key)) {
			t.Errorf("%+v: Validate error %v does not name %s", o, err, c.key)
		}
	}
}
