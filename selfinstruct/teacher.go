package selfinstruct

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/tokenizer"
)

// Params are the sampling settings of one batch of prompts.
type Params struct {
	MaxTokens   int
	Temperature float64
	TopP        float64
	Stop        []string
	Seed        uint64 // prompt i is sampled with Seed+i
}

// Completion is a teacher's reply to one prompt.
type Completion struct {
	Text      string
	Truncated bool // stopped by the token limit (finish_reason "length")
}

// Teacher writes completions of prompts.
type Teacher interface {
	Complete(ctx context.Context, prompts []string, p Params) ([]Completion, error)
}

// HTTPTeacher is any OpenAI-compatible endpoint. Prompts of a batch are
// sent concurrently, each retried with exponential backoff on network
// errors, timeouts, 408, 409, 429 and 5xx responses (honouring
// Retry-After); other 4xx responses fail at once. Start from
// DefaultHTTPTeacher; Complete refuses a teacher that Validate rejects.
type HTTPTeacher struct {
	BaseURL     string        // e.g. "https://host/v1" or "http://127.0.0.1:8080/v1"
	Model       string        // model name sent with each request
	APIKey      string        // sent as a bearer token when set
	Chat        bool          // use /chat/completions with the prompt as one user message
	Timeout     time.Duration // per attempt (> 0)
	Retries     int           // further attempts after the first (0: none)
	Backoff     time.Duration // first wait, doubled each retry (default 1 s)
	MaxBackoff  time.Duration // longest wait (default 1 minute)
	Concurrency int           // requests in flight (default: the whole batch)
	Client      *http.Client  // default http.DefaultClient
}

// Complete implements Teacher.
func (t *HTTPTeacher) Complete(ctx context.Context, prompts []string, p Params) ([]Completion, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	out := make([]Completion, len(prompts))
	errs := make([]error, len(prompts))
	limit := t.Concurrency
	if limit <= 0 {
		limit = len(prompts)
	}
	sem := make(chan struct{}, max(1, limit))
	var wg sync.WaitGroup
	for i, prompt := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = t.completeOne(ctx, prompt, p, p.Seed+uint64(i))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// statusError is a non-2xx answer.
type statusError struct {
	status     int
	msg        string
	retryAfter time.Duration
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.msg) }

func (e *statusError) retryable() bool {
	return e.status == 408 || e.status == 409 || e.status == 429 || e.status >= 500
}

func (t *HTTPTeacher) completeOne(ctx context.Context, prompt string, p Params, seed uint64) (Completion, error) {
	body := map[string]any{
		"model": t.Model, "max_tokens": p.MaxTokens, "temperature": p.Temperature, "top_p": p.TopP,
		"seed": int64(seed & (1<<63 - 1)), "n": 1,
	}
	if len(p.Stop) > 0 {
		body["stop"] = p.Stop
	}
	path := "/completions"
	if t.Chat {
		path = "/chat/completions"
		body["messages"] = []map[string]string{{"role": "user", "content": prompt}}
	} else {
		body["prompt"] = prompt
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return Completion{}, err
	}
	url := strings.TrimRight(t.BaseURL, "/") + path
	wait := t.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	maxWait := t.MaxBackoff
	if maxWait <= 0 {
		maxWait = time.Minute
	}
	for attempt := 0; ; attempt++ {
		c, err := t.post(ctx, url, raw)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return Completion{}, ctx.Err()
		}
		var se *statusError
		retryable := !errors.As(err, &se) || se.retryable()
		if !retryable || attempt >= t.Retries {
			return Completion{}, fmt.Errorf("teacher %s, attempt %d: %w", url, attempt+1, err)
		}
		d := min(wait<<attempt, maxWait)
		if se != nil && se.retryAfter > 0 {
			d = min(se.retryAfter, maxWait)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return Completion{}, ctx.Err()
		}
	}
}

// maxReply bounds a reply body.
const maxReply = 16 << 20

func (t *HTTPTeacher) post(ctx context.Context, url string, body []byte) (Completion, error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return Completion{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.APIKey)
	}
	client := t.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Completion{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return Completion{}, err
	}
	if len(raw) > maxReply {
		return Completion{}, fmt.Errorf("reply larger than %d bytes", maxReply)
	}
	if resp.StatusCode/100 != 2 {
		se := &statusError{status: resp.StatusCode, msg: strings.TrimSpace(string(raw))}
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			se.msg = e.Error.Message
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			se.retryAfter = time.Duration(s) * time.Second
		}
		return Completion{}, se
	}
	var r struct {
		Choices []struct {
			Text    string `json:"text"`
			Message *struct {
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Completion{}, fmt.Errorf("reply is not a completion: %w", err)
	}
	if len(r.Choices) == 0 {
		return Completion{}, errors.New("reply has no choices")
	}
	c := r.Choices[0]
	text := c.Text
	if c.Message != nil {
		text = c.Message.Content
	}
	return Completion{Text: text, Truncated: c.FinishReason == "length"}, nil
}

// LocalTeacher samples from a model in this process, all prompts of a
// batch decoded together.
type LocalTeacher struct {
	Engine *generate.Engine // its tokenizer must be set
	// Template is how a prompt reaches the model: "" continues the raw
	// text after BOS, as a completion endpoint does (Alpaca's teacher); a
	// template name (tokenizer.TemplateAlpaca, TemplateChatML, …) sends it
	// as one user message and continues after the generation prompt, as a
	// chat endpoint does, for a model fine-tuned to follow instructions
	// (TeacherDemonstrations).
	Template string
}

// Complete implements Teacher.
func (t LocalTeacher) Complete(ctx context.Context, prompts []string, p Params) ([]Completion, error) {
	tok := t.Engine.Tokenizer()
	if tok == nil {
		return nil, errors.New("local teacher: the engine has no tokenizer")
	}
	reqs := make([]generate.Request, len(prompts))
	for i, s := range prompts {
		ids := tok.Encode(s, true)
		if t.Template != "" {
			chat, ok := tok.(interface {
				RenderChat(template string, messages []tokenizer.Message, addGenerationPrompt bool) (string, error)
			})
			if !ok {
				return nil, fmt.Errorf("local teacher: template %q: the engine's tokenizer renders no chat templates", t.Template)
			}
			text, err := chat.RenderChat(t.Template, []tokenizer.Message{{Role: "user", Content: s}}, true)
			if err != nil {
				return nil, fmt.Errorf("local teacher: %w", err)
			}
			// Only the Alpaca layout leaves BOS to the encoder; chat
			// templates write their own opening tokens.
			ids = tok.Encode(text, t.Template == tokenizer.TemplateAlpaca)
		}
		reqs[i] = generate.Request{Prompt: ids, Options: generate.Options{
			MaxTokens: p.MaxTokens, Temperature: p.Temperature, TopP: p.TopP, Stop: p.Stop, Seed: p.Seed + uint64(i),
		}}
	}
	res, err := t.Engine.Generate(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("local teacher: %w", err)
	}
	out := make([]Completion, len(res))
	for i, r := range res {
		out[i] = Completion{Text: r.Text, Truncated: r.FinishReason == generate.FinishLength}
	}
	return out, nil
}
