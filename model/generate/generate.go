package generate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Tokenizer is what generation needs of a tokenizer: stop strings and
// streamed text are found by decoding the generated ids.
type Tokenizer interface {
	Encode(text string, addSpecial bool) []int
	Decode(ids []int, skipSpecial bool) string
	// EOS is the end-of-sequence id, negative when there is none.
	EOS() int
}

// Keys of Options: the sampling flags of `gotune generate` and `gotune
// chat`, and their keys under `generate:` and `chat:` in a --config file
// (with underscores).
const (
	KeyMaxTokens         = "max-tokens"
	KeyTemperature       = "temperature"
	KeyTopK              = "top-k"
	KeyTopP              = "top-p"
	KeyRepetitionPenalty = "repetition-penalty"
	KeyStop              = "stop"
	KeySeed              = "seed"
)

// Options control one sequence's decoding. The zero value is greedy
// decoding of up to DefaultMaxTokens tokens.
type Options struct {
	MaxTokens         int      // new tokens at most (0: DefaultMaxTokens)
	Temperature       float64  // 0: greedy (argmax); else logits are divided by it
	TopK              int      // keep the k most likely tokens (0: all)
	TopP              float64  // nucleus mass in (0, 1] (0 or 1: off)
	RepetitionPenalty float64  // θ > 0 of CTRL's penalty on seen tokens (0 or 1: off)
	Stop              []string // the text ends before the first of these
	StopTokens        []int    // ids that end the sequence, besides the tokenizer's EOS
	IgnoreEOS         bool     // keep going past EOS (benchmarks)
	Seed              uint64   // sampling seed: equal requests give equal outputs
	LogProbs          bool     // report each token's log-probability under the model
}

// DefaultMaxTokens is MaxTokens when a request leaves it at zero.
const DefaultMaxTokens = 256

// DefaultOptions sample up to DefaultMaxTokens tokens at temperature 1 from
// the whole distribution: top-k 0, top-p 1 and repetition penalty 1 (both
// off) spelled out, as the flags of gotune generate and chat start.
func DefaultOptions() Options {
	return Options{MaxTokens: DefaultMaxTokens, Temperature: 1, TopP: 1, RepetitionPenalty: 1}
}

// Validate reports the first option out of range, naming its key. Zero
// MaxTokens, TopP and RepetitionPenalty are accepted: they mean
// DefaultMaxTokens and "off".
func (o *Options) Validate() error { return o.validate(false) }

// ValidateExplicit is Validate for options that are all given, as the
// flags of gotune generate and chat give them: there a zero MaxTokens, TopP
// or RepetitionPenalty is a mistake, not a default, and is reported with
// its key.
func (o *Options) ValidateExplicit() error { return o.validate(true) }

func (o *Options) validate(explicit bool) error {
	switch {
	case o.MaxTokens < 0 || explicit && o.MaxTokens == 0:
		return fmt.Errorf("%s must be positive, got %d", KeyMaxTokens, o.MaxTokens)
	case o.Temperature < 0 || o.Temperature != o.Temperature:
		return fmt.Errorf("%s must not be negative (0: greedy), got %g", KeyTemperature, o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("%s must not be negative (0: all tokens), got %d", KeyTopK, o.TopK)
	case o.TopP < 0 || o.TopP > 1 || o.TopP != o.TopP || explicit && o.TopP == 0:
		return fmt.Errorf("%s must be in (0, 1], got %g", KeyTopP, o.TopP)
	case o.RepetitionPenalty < 0 || o.RepetitionPenalty != o.RepetitionPenalty || explicit && o.RepetitionPenalty == 0:
		return fmt.Errorf("%s must be positive (1: off), got %g", KeyRepetitionPenalty, o.RepetitionPenalty)
	}
	for i, s := range o.Stop {
		if s == "" {
			return fmt.Errorf("%s string %d is empty", KeyStop, i)
		}
	}
	return nil
}

// Request is one prompt to continue.
type Request struct {
	Prompt []int // token ids, at least one (include BOS if the model wants it)
	Options
	// OnText, when set, receives the text as it becomes final: the deltas
	// concatenate to Result.Text. It runs on the decoding goroutine and
	// must return quickly.
	OnText func(delta string)
}

// Finish reasons, as in the OpenAI API.
const (
	FinishStop   = "stop"   // EOS, a stop token or a stop string
	FinishLength = "length" // MaxTokens or the model's context reached
)

// Result is one finished sequence.
type Result struct {
	Tokens       []int     // generated ids (a final stop token excluded)
	Text         string    // decoded Tokens, cut before a stop string ("" without a tokenizer)
	FinishReason string    // FinishStop or FinishLength
	PromptTokens int       // len(Request.Prompt)
	LogProbs     []float32 // per token of Tokens, when Options.LogProbs
}

// seq is a sequence being decoded.
type seq struct {
	req     *Request
	st      *State
	smp     *sampler
	limit   int // new tokens allowed
	stopIDs []int
	maxStop int
	decode  bool // Text is needed (stop strings or streaming)
	res     Result
	emitted int // bytes of res.Text already given to OnText
	done    bool
	last    int    // last sampled token, the next feed
	feed    [1]int // backing of the one-token feed
}

// next is the one-token feed of a decoding step.
func (s *seq) next() []int {
	s.feed[0] = s.last
	return s.feed[:]
}

// start checks a request against the model and readies its sequence.
func (e *Engine) start(r *Request) (*seq, error) {
	if err := r.Options.Validate(); err != nil {
		return nil, err
	}
	if len(r.Prompt) == 0 {
		return nil, errors.New("empty prompt: at least one token is needed")
	}
	for i, t := range r.Prompt {
		if t < 0 || t >= e.V {
			return nil, fmt.Errorf("prompt token %d: id %d outside vocabulary [0, %d)", i, t, e.V)
		}
	}
	limit := r.MaxTokens
	if limit == 0 {
		limit = DefaultMaxTokens
	}
	if e.maxPos > 0 {
		if len(r.Prompt) >= e.maxPos {
			return nil, fmt.Errorf("prompt of %d tokens leaves no room in the model's %d positions", len(r.Prompt), e.maxPos)
		}
		limit = min(limit, e.maxPos-len(r.Prompt))
	}
	needText := len(r.Stop) > 0 || r.OnText != nil
	if e.tok == nil && needText {
		return nil, errors.New("stop strings and streamed text need a tokenizer")
	}
	s := &seq{req: r, st: e.getState(), smp: newSampler(r.Options, e.V, r.Prompt), limit: limit, decode: e.tok != nil}
	s.res.PromptTokens = len(r.Prompt)
	s.stopIDs = append(s.stopIDs, r.StopTokens...)
	if e.tok != nil && e.tok.EOS() >= 0 && !r.IgnoreEOS {
		s.stopIDs = append(s.stopIDs, e.tok.EOS())
	}
	for _, st := range r.Stop {
		s.maxStop = max(s.maxStop, len(st))
	}
	return s, nil
}

// push takes the token sampled after the sequence's last position.
func (e *Engine) push(s *seq, tok int, logp float32) {
	for _, id := range s.stopIDs {
		if tok == id {
			s.finish(FinishStop)
			return
		}
	}
	s.res.Tokens = append(s.res.Tokens, tok)
	if s.req.LogProbs {
		s.res.LogProbs = append(s.res.LogProbs, logp)
	}
	s.last = tok
	if s.decode {
		// Decoding the whole output each step keeps multi-token characters
		// and tokenizer-specific spacing right; outputs are short enough.
		text := e.tok.Decode(s.res.Tokens, true)
		from := max(0, s.emitted-s.maxStop)
		for _, stop := range s.req.Stop {
			if i := strings.Index(text[min(from, len(text)):], stop); i >= 0 {
				s.res.Text = text[:from+i]
				s.finish(FinishStop)
				return
			}
		}
		s.res.Text = text
	}
	if len(s.res.Tokens) >= s.limit {
		s.finish(FinishLength)
		return
	}
	s.stream(false)
}

func (s *seq) finish(reason string) {
	s.done = true
	s.res.FinishReason = reason
	s.stream(true)
}

// stream hands OnText the text that can no longer change: all of it when
// the sequence is done; else up to a trailing incomplete UTF-8 character
// (decoded as U+FFFD) and any tail that could still grow into a stop string.
func (s *seq) stream(final bool) {
	if s.req.OnText == nil {
		return
	}
	text := s.res.Text
	safe := len(text)
	if !final {
		for safe > 0 {
			r, size := utf8.DecodeLastRuneInString(text[:safe])
			if r != utf8.RuneError {
				break
			}
			safe -= size
		}
		for _, stop := range s.req.Stop {
			for k := min(len(stop)-1, safe); k > 0; k-- {
				if strings.HasSuffix(text[:safe], stop[:k]) {
					safe -= k
					break
				}
			}
		}
	}
	if safe > s.emitted {
		s.req.OnText(text[s.emitted:safe])
		s.emitted = safe
	}
}

// Generate decodes all requests together as one batch and returns their
// results in order. Sequences leave the batch as they finish. An error in
// any request's options is returned before any decoding.
func (e *Engine) Generate(ctx context.Context, reqs []Request) ([]Result, error) {
	seqs := make([]*seq, len(reqs))
	defer func() {
		for _, s := range seqs {
			if s != nil {
				e.putState(s.st)
			}
		}
	}()
	for i := range reqs {
		s, err := e.start(&reqs[i])
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		seqs[i] = s
	}
	feeds := make([][]int, len(seqs))
	for i, s := range seqs {
		feeds[i] = s.req.Prompt
	}
	return e.decode(ctx, seqs, feeds)
}

// decode feeds every sequence its feed (nil for one already done), samples
// and pushes the next tokens, and repeats until all are done.
func (e *Engine) decode(ctx context.Context, seqs []*seq, feeds [][]int) ([]Result, error) {
	states := make([]*State, len(seqs))
	active := 0
	for i, s := range seqs {
		states[i] = s.st
		if feeds[i] != nil {
			active++
		}
	}
	for active > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		logits, err := e.Forward(states, feeds)
		if err != nil {
			return nil, err
		}
		active = 0
		for i, s := range seqs {
			if logits[i] == nil {
				continue
			}
			tok, lp := s.smp.next(logits[i])
			e.push(s, tok, lp)
			if s.done {
				feeds[i] = nil
				continue
			}
			feeds[i] = s.next()
			active++
		}
	}
	out := make([]Result, len(seqs))
	for i, s := range seqs {
		out[i] = s.res
	}
	return out, nil
}

// getState returns a cleared state, reusing one given back when possible.
func (e *Engine) getState() *State {
	e.poolMu.Lock()
	defer e.poolMu.Unlock()
	if n := len(e.pool); n > 0 {
		st := e.pool[n-1]
		e.pool = e.pool[:n-1]
		st.Reset()
		return st
	}
	return e.NewState()
}

// putState gives a state back for reuse (a few are kept).
func (e *Engine) putState(st *State) {
	e.poolMu.Lock()
	defer e.poolMu.Unlock()
	if len(e.pool) < 16 {
		e.pool = append(e.pool, st)
	}
}
