package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gotune/gotune/model/generate"
)

// options turns a request's sampling fields into decoding options for a
// prompt of promptLen tokens, enforcing the server's limits.
func (s *Server) options(f *samplingFields, maxTokens *int, promptLen int) (generate.Options, int, error) {
	var o generate.Options
	if f.Model != "" && f.Model != s.cfg.ModelName {
		return o, 0, &httpError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found",
			msg: fmt.Sprintf("model %q does not exist; this server has %q", f.Model, s.cfg.ModelName)}
	}
	if promptLen == 0 {
		return o, 0, badRequest("invalid_prompt", "the prompt is empty")
	}
	if promptLen > s.cfg.MaxPromptTokens {
		return o, 0, badRequest("context_length_exceeded", "the prompt has %d tokens; this server accepts at most %d", promptLen, s.cfg.MaxPromptTokens)
	}
	room := s.cfg.MaxTokens
	if ctx := s.e.MaxPositions(); ctx > 0 {
		room = min(room, ctx-promptLen)
		if room <= 0 {
			return o, 0, badRequest("context_length_exceeded", "the prompt has %d tokens, which fills the model's context of %d", promptLen, ctx)
		}
	}
	switch {
	case maxTokens == nil:
		o.MaxTokens = min(s.cfg.DefaultMaxTokens, room)
	case *maxTokens <= 0:
		return o, 0, badRequest("invalid_value", "max_tokens must be at least 1, got %d", *maxTokens)
	case *maxTokens > s.cfg.MaxTokens:
		return o, 0, badRequest("invalid_value", "max_tokens %d exceeds this server's limit of %d", *maxTokens, s.cfg.MaxTokens)
	case *maxTokens > room:
		return o, 0, badRequest("context_length_exceeded", "the prompt's %d tokens plus max_tokens %d exceed the model's context of %d",
			promptLen, *maxTokens, s.e.MaxPositions())
	default:
		o.MaxTokens = *maxTokens
	}
	o.Temperature = 1
	if f.Temperature != nil {
		if *f.Temperature < 0 || *f.Temperature > 2 {
			return o, 0, badRequest("invalid_value", "temperature %g is outside [0, 2]", *f.Temperature)
		}
		o.Temperature = *f.Temperature
	}
	if f.TopP != nil {
		if *f.TopP <= 0 || *f.TopP > 1 {
			return o, 0, badRequest("invalid_value", "top_p %g is outside (0, 1]", *f.TopP)
		}
		o.TopP = *f.TopP
	}
	if f.TopK != nil {
		if *f.TopK < 0 {
			return o, 0, badRequest("invalid_value", "top_k %d is negative", *f.TopK)
		}
		o.TopK = *f.TopK
	}
	if f.RepetitionPenalty != nil {
		if *f.RepetitionPenalty <= 0 {
			return o, 0, badRequest("invalid_value", "repetition_penalty %g must be positive", *f.RepetitionPenalty)
		}
		o.RepetitionPenalty = *f.RepetitionPenalty
	}
	if f.PresencePenalty != 0 || f.FrequencyPenalty != 0 {
		return o, 0, badRequest("unsupported_parameter", "presence_penalty and frequency_penalty are not supported; use repetition_penalty")
	}
	stops, err := f.stops()
	if err != nil {
		return o, 0, badRequest("invalid_value", "%v", err)
	}
	o.Stop = stops
	o.Seed = randomSeed()
	if f.Seed != nil {
		o.Seed = uint64(*f.Seed)
	}
	n := 1
	if f.N != nil {
		if *f.N < 1 {
			return o, 0, badRequest("invalid_value", "n must be at least 1, got %d", *f.N)
		}
		n = *f.N
	}
	return o, n, nil
}

// choice is one sequence a request asks for.
type choice struct {
	index int
	req   generate.Request
	res   generate.Result
	err   error
}

// run decodes all choices through the scheduler; with events set, text
// deltas and ends are reported as they happen.
func (s *Server) run(ctx context.Context, choices []*choice, ev *events) {
	var wg sync.WaitGroup
	for _, c := range choices {
		if ev != nil {
			idx := c.index
			c.req.OnText = func(d string) { ev.push(event{index: idx, text: d}) }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.res, c.err = s.sched.Generate(ctx, c.req)
			if ev != nil {
				ev.push(event{index: c.index, end: true, finish: c.res.FinishReason, err: c.err})
			}
		}()
	}
	wg.Wait()
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := decode(r, &req); err != nil {
		writeHTTPError(w, err)
		return
	}
	switch {
	case req.Echo:
		writeHTTPError(w, badRequest("unsupported_parameter", "echo is not supported"))
		return
	case req.BestOf != nil && *req.BestOf > 1:
		writeHTTPError(w, badRequest("unsupported_parameter", "best_of is not supported"))
		return
	case req.Suffix != nil && *req.Suffix != "":
		writeHTTPError(w, badRequest("unsupported_parameter", "suffix is not supported"))
		return
	case req.LogProbs != nil:
		writeHTTPError(w, badRequest("unsupported_parameter", "logprobs is not supported"))
		return
	}
	texts, ids, err := req.prompts()
	if err != nil {
		writeHTTPError(w, badRequest("invalid_prompt", "%v", err))
		return
	}
	for _, t := range texts {
		ids = append(ids, s.tok.Encode(t, true))
	}
	var choices []*choice
	promptTokens := 0
	for p, prompt := range ids {
		opt, n, err := s.options(&req.samplingFields, req.MaxTokens, len(prompt))
		if err != nil {
			writeHTTPError(w, fmt.Errorf("prompt %d: %w", p, err))
			return
		}
		if len(ids)*n > s.cfg.MaxChoices {
			writeHTTPError(w, badRequest("invalid_value", "%d prompts × n = %d exceed this server's limit of %d sequences per request", len(ids), n, s.cfg.MaxChoices))
			return
		}
		for _, t := range prompt {
			if t < 0 || t >= s.e.Config().VocabSize {
				writeHTTPError(w, badRequest("invalid_prompt", "prompt %d: token id %d outside the vocabulary", p, t))
				return
			}
		}
		promptTokens += len(prompt)
		for j := range n {
			o := opt
			o.Seed += uint64(j)
			choices = append(choices, &choice{index: len(choices), req: generate.Request{Prompt: prompt, Options: o}})
		}
	}
	release, err := s.admit()
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	defer release()
	head := completionResponse{ID: newID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: s.cfg.ModelName}
	if req.Stream {
		s.stream(w, r, choices, func(e event) any {
			c := head
			ch := completionChoice{Index: e.index, Text: e.text}
			if e.end {
				ch.FinishReason = &e.finish
			}
			c.Choices = []completionChoice{ch}
			return c
		}, nil, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, head, promptTokens)
		return
	}
	s.run(r.Context(), choices, nil)
	resp := head
	u := usage{PromptTokens: promptTokens}
	for _, c := range choices {
		if c.err != nil {
			writeHTTPError(w, generationError(c.err))
			return
		}
		fr := c.res.FinishReason
		resp.Choices = append(resp.Choices, completionChoice{Index: c.index, Text: c.res.Text, FinishReason: &fr})
		u.CompletionTokens += len(c.res.Tokens)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	resp.Usage = &u
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Chat == nil {
		writeHTTPError(w, &httpError{status: http.StatusNotFound, typ: "invalid_request_error", code: "not_found", msg: "this server has no chat template; use /v1/completions"})
		return
	}
	var req chatRequest
	if err := decode(r, &req); err != nil {
		writeHTTPError(w, err)
		return
	}
	if len(req.Messages) == 0 {
		writeHTTPError(w, badRequest("invalid_value", "messages must not be empty"))
		return
	}
	if req.LogProbs {
		writeHTTPError(w, badRequest("unsupported_parameter", "logprobs is not supported"))
		return
	}
	msgs := make([]Message, len(req.Messages))
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		default:
			writeHTTPError(w, badRequest("invalid_value", "messages[%d]: role %q is not one of system, developer, user, assistant", i, m.Role))
			return
		}
		text, err := m.text()
		if err != nil {
			writeHTTPError(w, badRequest("invalid_value", "messages[%d]: %v", i, err))
			return
		}
		msgs[i] = Message{Role: m.Role, Content: text}
		if m.Role == "developer" {
			msgs[i].Role = "system"
		}
	}
	text, err := s.cfg.Chat(msgs)
	if err != nil {
		writeHTTPError(w, badRequest("invalid_value", "chat template: %v", err))
		return
	}
	prompt := s.tok.Encode(text, false)
	maxTok := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		maxTok = req.MaxCompletionTokens
	}
	opt, n, err := s.options(&req.samplingFields, maxTok, len(prompt))
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	if n > s.cfg.MaxChoices {
		writeHTTPError(w, badRequest("invalid_value", "n = %d exceeds this server's limit of %d", n, s.cfg.MaxChoices))
		return
	}
	opt.StopTokens = slices.Clone(s.cfg.ChatStopTokens)
	var choices []*choice
	for j := range n {
		o := opt
		o.Seed += uint64(j)
		choices = append(choices, &choice{index: j, req: generate.Request{Prompt: prompt, Options: o}})
	}
	release, err := s.admit()
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	defer release()
	head := chatResponse{ID: newID("chatcmpl-"), Object: "chat.completion", Created: time.Now().Unix(), Model: s.cfg.ModelName}
	if req.Stream {
		chunk := head
		chunk.Object = "chat.completion.chunk"
		first := func(index int) any {
			c := chunk
			empty := ""
			c.Choices = []chatChoice{{Index: index, Delta: &delta{Role: "assistant", Content: &empty}}}
			return c
		}
		s.stream(w, r, choices, func(e event) any {
			c := chunk
			ch := chatChoice{Index: e.index, Delta: &delta{}}
			if e.text != "" {
				ch.Delta.Content = &e.text
			}
			if e.end {
				ch.FinishReason = &e.finish
			}
			c.Choices = []chatChoice{ch}
			return c
		}, first, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, chunk, len(prompt))
		return
	}
	s.run(r.Context(), choices, nil)
	resp := head
	u := usage{PromptTokens: len(prompt)}
	for _, c := range choices {
		if c.err != nil {
			writeHTTPError(w, generationError(c.err))
			return
		}
		fr := c.res.FinishReason
		resp.Choices = append(resp.Choices, chatChoice{Index: c.index, Message: &Message{Role: "assistant", Content: c.res.Text}, FinishReason: &fr})
		u.CompletionTokens += len(c.res.Tokens)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	resp.Usage = &u
	writeJSON(w, http.StatusOK, resp)
}

// generationError maps an engine error: a stopped server is 503, anything
// else about the request 400.
func generationError(err error) error {
	switch {
	case errors.Is(err, generate.ErrStopped):
		return &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "shutting_down", msg: "the server is shutting down", retryAfterS: 1}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &httpError{status: 499, typ: "invalid_request_error", code: "cancelled", msg: "the request was cancelled"}
	}
	return badRequest("invalid_request", "%v", err)
}

// event is a streamed piece of one choice: a text delta, or its end.
type event struct {
	index  int
	text   string
	end    bool
	finish string
	err    error
}

// events is an unbounded queue: the decoding goroutine must never wait on
// a slow client.
type events struct {
	mu     sync.Mutex
	q      []event
	notify chan struct{}
}

func (q *events) push(e event) {
	q.mu.Lock()
	q.q = append(q.q, e)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *events) take() []event {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.q
	q.q = nil
	return out
}

// stream answers with server-sent events: an optional opening chunk per
// choice, a chunk per text delta, a closing chunk per choice with its
// finish reason, an optional usage chunk, then `data: [DONE]`.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, choices []*choice, chunk func(event) any, opening func(int) any, includeUsage bool, usageHead any, promptTokens int) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	if opening != nil {
		for _, c := range choices {
			send(opening(c.index))
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	ev := &events{notify: make(chan struct{}, 1)}
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		defer close(done)
		s.run(ctx, choices, ev)
	}()
	ended := 0
	for ended < len(choices) {
		select {
		case <-ev.notify:
		case <-done:
		}
		for _, e := range ev.take() {
			if e.err != nil {
				var body apiError
				body.Error.Message, body.Error.Type = generationError(e.err).Error(), "server_error"
				send(body)
				if flusher != nil {
					flusher.Flush()
				}
				cancel() // the other choices stop too
				<-done
				return
			}
			send(chunk(e))
			if e.end {
				ended++
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	<-done
	if includeUsage {
		u := usage{PromptTokens: promptTokens}
		for _, c := range choices {
			u.CompletionTokens += len(c.res.Tokens)
		}
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		switch h := usageHead.(type) {
		case completionResponse:
			h.Choices, h.Usage = []completionChoice{}, &u
			send(h)
		case chatResponse:
			h.Choices, h.Usage = []chatChoice{}, &u
			send(h)
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}
