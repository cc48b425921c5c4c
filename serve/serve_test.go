package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model/generate"
)

// testEngine is a small random model over a byte-level tokenizer.
func testEngine(t testing.TB) *generate.Engine {
	t.Helper()
	return tinymodel.Engine(t, 7, 128, "<s>", "</s>")
}

// simpleChat renders messages as "role: content" lines, then "assistant:".
func simpleChat(msgs []Message) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
	}
	b.WriteString("assistant:")
	return b.String(), nil
}

// startServer runs a real server with DefaultConfig, changed by set when it
// is not nil, on a loopback port and returns its base URL; it is shut down
// when the test ends.
func startServer(t *testing.T, e *generate.Engine, set func(*Config)) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	cfg := DefaultConfig()
	if set != nil {
		set(&cfg)
	}
	if cfg.Chat == nil {
		cfg.Chat = simpleChat
	}
	s, err := New(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(ctx, ln)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String() + "/v1", cancel, done
}

func post(t *testing.T, url, key string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest("POST", url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

func decodeJSON[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func TestCompletionsMatchEngine(t *testing.T) {
	e := testEngine(t)
	url, _, _ := startServer(t, e, func(c *Config) { c.ModelName = "tiny" })
	resp, raw := post(t, url+"/completions", "", map[string]any{
		"model": "tiny", "prompt": []string{"Hello", "A longer prompt"}, "max_tokens": 12, "temperature": 0.8, "seed": 42, "n": 2,
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	got := decodeJSON[completionResponse](t, raw)
	if got.Object != "text_completion" || got.Model != "tiny" || len(got.Choices) != 4 || !strings.HasPrefix(got.ID, "cmpl-") {
		t.Fatalf("response %s", raw)
	}
	tok := e.Tokenizer()
	completion := 0
	for i, c := range got.Choices {
		prompt := []string{"Hello", "A longer prompt"}[i/2]
		want, err := e.Generate(context.Background(), []generate.Request{{Prompt: tok.Encode(prompt, true),
			Options: generate.Options{MaxTokens: 12, Temperature: 0.8, Seed: 42 + uint64(i%2)}}})
		if err != nil {
			t.Fatal(err)
		}
		if c.Index != i || c.Text != want[0].Text || *c.FinishReason != want[0].FinishReason {
			t.Errorf("choice %d: %q (%s), engine gives %q (%s)", i, c.Text, *c.FinishReason, want[0].Text, want[0].FinishReason)
		}
		completion += len(want[0].Tokens)
	}
	wantPrompt := len(tok.Encode("Hello", true)) + len(tok.Encode("A longer prompt", true))
	if u := got.Usage; u == nil || u.PromptTokens != wantPrompt || u.CompletionTokens != completion || u.TotalTokens != wantPrompt+completion {
		t.Errorf("usage %+v, want prompt %d completion %d", got.Usage, wantPrompt, completion)
	}
	// Token-id prompts are accepted too.
	resp, raw = post(t, url+"/completions", "", map[string]any{"prompt": tok.Encode("Hello", true), "max_tokens": 12, "temperature": 0.8, "seed": 42})
	if resp.StatusCode != 200 || decodeJSON[completionResponse](t, raw).Choices[0].Text != got.Choices[0].Text {
		t.Fatalf("token prompt: %d %s", resp.StatusCode, raw)
	}
}

// readSSE returns the data payloads of an event stream up to [DONE].
func readSSE(t *testing.T, body io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if data == "[DONE]" {
			return out
		}
		out = append(out, data)
	}
	t.Fatalf("stream ended without [DONE] (%v)", sc.Err())
	return nil
}

func streamPost(t *testing.T, url string, body any) *http.Response {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestStreamingEqualsNonStreaming(t *testing.T) {
	e := testEngine(t)
	url, _, _ := startServer(t, e, nil)
	for _, endpoint := range []string{"completions", "chat/completions"} {
		t.Run(endpoint, func(t *testing.T) {
			body := map[string]any{"max_tokens": 20, "temperature": 0.9, "seed": 3, "n": 2, "stop": "zz"}
			if endpoint == "completions" {
				body["prompt"] = "Stream me"
			} else {
				body["messages"] = []map[string]any{{"role": "system", "content": "Be brief."}, {"role": "user", "content": []map[string]string{{"type": "text", "text": "Hi"}}}}
			}
			resp, raw := post(t, url+"/"+endpoint, "", body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			want := map[int]string{}
			finish := map[int]string{}
			if endpoint == "completions" {
				for _, c := range decodeJSON[completionResponse](t, raw).Choices {
					want[c.Index], finish[c.Index] = c.Text, *c.FinishReason
				}
			} else {
				r := decodeJSON[chatResponse](t, raw)
				if r.Object != "chat.completion" {
					t.Fatalf("object %q", r.Object)
				}
				for _, c := range r.Choices {
					if c.Message.Role != "assistant" {
						t.Fatalf("role %q", c.Message.Role)
					}
					want[c.Index], finish[c.Index] = c.Message.Content, *c.FinishReason
				}
			}
			body["stream"] = true
			body["stream_options"] = map[string]bool{"include_usage": true}
			sresp := streamPost(t, url+"/"+endpoint, body)
			defer sresp.Body.Close()
			if ct := sresp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("content type %q", ct)
			}
			got := map[int]string{}
			gotFinish := map[int]string{}
			sawUsage := false
			for _, data := range readSSE(t, sresp.Body) {
				if endpoint == "completions" {
					c := decodeJSON[completionResponse](t, []byte(data))
					if c.Usage != nil {
						sawUsage = true
						continue
					}
					ch := c.Choices[0]
					got[ch.Index] += ch.Text
					if ch.FinishReason != nil {
						gotFinish[ch.Index] = *ch.FinishReason
					}
				} else {
					c := decodeJSON[chatResponse](t, []byte(data))
					if c.Object != "chat.completion.chunk" {
						t.Fatalf("chunk object %q", c.Object)
					}
					if c.Usage != nil {
						sawUsage = true
						continue
					}
					ch := c.Choices[0]
					if ch.Delta.Content != nil {
						got[ch.Index] += *ch.Delta.Content
					}
					if ch.FinishReason != nil {
						gotFinish[ch.Index] = *ch.FinishReason
					}
				}
			}
			for i := range 2 {
				if got[i] != want[i] || gotFinish[i] != finish[i] {
					t.Errorf("choice %d: streamed %q (%s), non-streamed %q (%s)", i, got[i], gotFinish[i], want[i], finish[i])
				}
			}
			if !sawUsage {
				t.Error("no usage chunk despite include_usage")
			}
		})
	}
}

func TestModelsAndAuth(t *testing.T) {
	e := testEngine(t)
	url, _, _ := startServer(t, e, func(c *Config) {
		c.ModelName = "m1"
		c.APIKey = "s3cret"
	})
	get := func(path, key string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", url+path, nil)
		if key != "" {
			if !strings.Contains(key, " ") {
				key = "Bearer " + key
			}
			req.Header.Set("Authorization", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, raw
	}
	for _, key := range []string{"", "wrong", "s3cre", "S3CRET", "Basic s3cret", "Bearer  "} {
		resp, raw := get("/models", key)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("key %q: status %d", key, resp.StatusCode)
		}
		if e := decodeJSON[apiError](t, raw); *e.Error.Code != "invalid_api_key" {
			t.Fatalf("error %s", raw)
		}
		if resp, _ := post(t, url+"/completions", strings.TrimPrefix(key, "Basic "), map[string]any{"prompt": "x"}); key != "Basic s3cret" && resp.StatusCode != 401 {
			t.Fatalf("completions with key %q: status %d", key, resp.StatusCode)
		}
	}
	resp, raw := get("/models", "s3cret")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if l := decodeJSON[modelList](t, raw); l.Object != "list" || len(l.Data) != 1 || l.Data[0].ID != "m1" {
		t.Fatalf("models %s", raw)
	}
	if resp, _ := get("/models/m1", "s3cret"); resp.StatusCode != 200 {
		t.Fatalf("model m1: %d", resp.StatusCode)
	}
	if resp, _ := get("/models/other", "s3cret"); resp.StatusCode != 404 {
		t.Fatalf("model other: %d", resp.StatusCode)
	}
	if resp, raw := post(t, url+"/completions", "s3cret", map[string]any{"prompt": "x", "max_tokens": 2}); resp.StatusCode != 200 {
		t.Fatalf("authorised completion: %d %s", resp.StatusCode, raw)
	}
}

func TestLimitsAndBadRequests(t *testing.T) {
	e := testEngine(t)
	url, _, _ := startServer(t, e, func(c *Config) {
		c.ModelName = "tiny"
		c.MaxRequestBytes = 2000
		c.MaxPromptTokens = 40
		c.MaxTokens = 30
		c.MaxChoices = 3
	})
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"body too large", "/completions", map[string]any{"prompt": strings.Repeat("a", 3000)}, 413, "request_too_large"},
		{"prompt too long", "/completions", map[string]any{"prompt": strings.Repeat("a", 60)}, 400, "context_length_exceeded"},
		{"chat prompt too long", "/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": strings.Repeat("a", 60)}}}, 400, "context_length_exceeded"},
		{"max_tokens over limit", "/completions", map[string]any{"prompt": "a", "max_tokens": 31}, 400, "invalid_value"},
		{"max_tokens zero", "/completions", map[string]any{"prompt": "a", "max_tokens": 0}, 400, "invalid_value"},
		{"too many choices", "/completions", map[string]any{"prompt": []string{"a", "b"}, "n": 2}, 400, "invalid_value"},
		{"invalid json", "/completions", "{\"prompt\": ", 400, "invalid_json"},
		{"no prompt", "/completions", map[string]any{"max_tokens": 3}, 400, "invalid_prompt"},
		{"bad prompt type", "/completions", map[string]any{"prompt": 3}, 400, "invalid_prompt"},
		{"token outside vocabulary", "/completions", map[string]any{"prompt": []int{1, 99999}}, 400, "invalid_prompt"},
		{"unknown model", "/completions", map[string]any{"model": "gpt-4", "prompt": "a"}, 404, "model_not_found"},
		{"temperature", "/completions", map[string]any{"prompt": "a", "temperature": 3}, 400, "invalid_value"},
		{"top_p", "/completions", map[string]any{"prompt": "a", "top_p": 0}, 400, "invalid_value"},
		{"penalties", "/completions", map[string]any{"prompt": "a", "presence_penalty": 0.5}, 400, "unsupported_parameter"},
		{"echo", "/completions", map[string]any{"prompt": "a", "echo": true}, 400, "unsupported_parameter"},
		{"five stops", "/completions", map[string]any{"prompt": "a", "stop": []string{"a", "b", "c", "d", "e"}}, 400, "invalid_value"},
		{"no messages", "/chat/completions", map[string]any{"messages": []any{}}, 400, "invalid_value"},
		{"bad role", "/chat/completions", map[string]any{"messages": []map[string]string{{"role": "wizard", "content": "x"}}}, 400, "invalid_value"},
		{"image content", "/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": []map[string]string{{"type": "image_url"}}}}}, 400, "invalid_value"},
		{"unknown path", "/embeddings", map[string]any{}, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, raw := post(t, url+c.path, "", c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, raw)
			}
			e := decodeJSON[apiError](t, raw)
			if e.Error.Message == "" || e.Error.Code == nil || *e.Error.Code != c.code {
				t.Fatalf("error body %s, want code %s", raw, c.code)
			}
		})
	}
	// Exactly at the limits is fine.
	resp, raw := post(t, url+"/completions", "", map[string]any{"prompt": strings.Repeat("a", 39), "max_tokens": 30, "temperature": 0})
	if resp.StatusCode != 200 {
		t.Fatalf("at the limits: %d %s", resp.StatusCode, raw)
	}
	if got := decodeJSON[completionResponse](t, raw); got.Usage.PromptTokens != 40 {
		t.Fatalf("prompt tokens %d, want 40 (BOS + 39)", got.Usage.PromptTokens)
	}
}

// With one admission slot taken by a running request, the next is told to
// come back later; once it ends, requests are served again.
func TestBusyServerAnswers429(t *testing.T) {
	e := testEngine(t)
	url, _, _ := startServer(t, e, func(c *Config) { c.MaxPending = 1 })
	// The long request must still be running when the second arrives; on a
	// fast machine it may already have finished, so try a few times. A
	// server that never answers 429 fails every attempt.
	var busy bool
	for attempt := 0; attempt < 10 && !busy; attempt++ {
		sresp := streamPost(t, url+"/completions", map[string]any{"prompt": "long", "max_tokens": 120, "stream": true, "temperature": 0})
		br := bufio.NewReader(sresp.Body)
		if _, err := br.ReadString('\n'); err != nil { // first chunk: the request is admitted
			t.Fatal(err)
		}
		resp, raw := post(t, url+"/completions", "", map[string]any{"prompt": "x", "max_tokens": 2})
		switch {
		case resp.StatusCode == 429:
			if resp.Header.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After: %s", raw)
			}
			busy = true
		case resp.StatusCode != 200:
			t.Fatalf("second request: %d %s", resp.StatusCode, raw)
		}
		io.Copy(io.Discard, br)
		sresp.Body.Close()
	}
	if !busy {
		t.Fatal("the server never answered 429 while a request was in flight")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, raw := post(t, url+"/completions", "", map[string]any{"prompt": "x", "max_tokens": 2})
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the first request ended: %d %s", resp.StatusCode, raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Concurrent requests are batched and each gets what it would get alone.
func TestConcurrentRequests(t *testing.T) {
	e := testEngine(t)
	url, _, _ := startServer(t, e, func(c *Config) { c.MaxBatch = 4 })
	const n = 10
	texts := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, raw := post(t, url+"/completions", "", map[string]any{"prompt": fmt.Sprintf("request %d", i), "max_tokens": 10 + i, "seed": i, "temperature": 1})
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, raw)
				return
			}
			texts[i] = decodeJSON[completionResponse](t, raw).Choices[0].Text
		}()
	}
	wg.Wait()
	for i := range n {
		want, err := e.Generate(context.Background(), []generate.Request{{Prompt: e.Tokenizer().Encode(fmt.Sprintf("request %d", i), true),
			Options: generate.Options{MaxTokens: 10 + i, Temperature: 1, Seed: uint64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if texts[i] != want[0].Text {
			t.Errorf("request %d: %q, alone %q", i, texts[i], want[0].Text)
		}
	}
}

// Shutdown lets a request in flight finish, then refuses connections.
func TestGracefulShutdown(t *testing.T) {
	e := testEngine(t)
	url, cancel, done := startServer(t, e, nil)
	sresp := streamPost(t, url+"/completions", map[string]any{"prompt": "finish me", "max_tokens": 100, "stream": true, "temperature": 0})
	defer sresp.Body.Close()
	br := bufio.NewReader(sresp.Body)
	first, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	var text, finish string
	for _, data := range append([]string{strings.TrimSpace(strings.TrimPrefix(first, "data: "))}, readSSE(t, br)...) {
		c := decodeJSON[completionResponse](t, []byte(data))
		text += c.Choices[0].Text
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if finish == "" {
		t.Fatal("the request in flight did not finish")
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	fresh := &http.Client{Transport: &http.Transport{}}
	_, err = fresh.Post(url+"/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Fatalf("after shutdown: %v", err)
	}
	want, _ := e.Generate(context.Background(), []generate.Request{{Prompt: e.Tokenizer().Encode("finish me", true), Options: generate.Options{MaxTokens: 100}}})
	if text != want[0].Text {
		t.Fatalf("text after shutdown began %q, want %q", text, want[0].Text)
	}
}

// TestConfigValidate: New refuses every invalid field with an error naming
// its key, and ListenAndServe an empty address.
func TestConfigValidate(t *testing.T) {
	e := testEngine(t)
	newErr := func(c Config) error {
		_, err := New(e, c)
		return err
	}
	configtest.Check(t, DefaultConfig(), Config.Validate, newErr, []configtest.Case[Config]{
		{Key: KeyModelName, Edit: func(c *Config) { c.ModelName = "" }},
		{Key: KeyMaxRequestBytes, Edit: func(c *Config) { c.MaxRequestBytes = 0 }},
		{Key: KeyMaxPromptTokens, Edit: func(c *Config) { c.MaxPromptTokens = -1 }},
		{Key: KeyMaxTokens, Edit: func(c *Config) { c.MaxTokens = 0 }},
		{Key: KeyDefaultMaxTokens, Edit: func(c *Config) { c.DefaultMaxTokens = -5 }},
		{Key: "MaxChoices", Edit: func(c *Config) { c.MaxChoices = 0 }},
		{Key: KeyMaxBatch, Edit: func(c *Config) { c.MaxBatch = 0 }},
		{Key: KeyMaxPending, Edit: func(c *Config) { c.MaxPending = -1 }},
		{Key: KeyShutdownTimeout, Edit: func(c *Config) { c.ShutdownTimeout = 0 }},
	})
	s, err := New(e, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ListenAndServe(context.Background(), "", nil); err == nil || !strings.Contains(err.Error(), KeyAddr) {
		t.Errorf("empty address: error %v does not name %s", err, KeyAddr)
	}
}
