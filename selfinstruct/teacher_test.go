package selfinstruct

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/serve"
	"github.com/gotune/gotune/tokenizer"
)

// tinyEngine is a small random model over a byte-level tokenizer, with a
// context long enough for self-instruct prompts.
func tinyEngine(t *testing.T) *generate.Engine {
	t.Helper()
	return tinymodel.Engine(t, 3, 4096, "<s>", "</s>")
}

// startServe runs our own OpenAI-compatible server with serve's default
// config, changed by set when it is not nil, on a loopback port.
func startServe(t *testing.T, e *generate.Engine, set func(*serve.Config)) string {
	t.Helper()
	cfg := serve.DefaultConfig()
	if set != nil {
		set(&cfg)
	}
	s, err := serve.New(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/v1"
}

func chatTemplate(msgs []serve.Message) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "<%s>%s\n", m.Role, m.Content)
	}
	return b.String() + "<assistant>", nil
}

// The HTTP teacher against our own server returns what the model, run
// in-process, writes for the same prompts and seeds; so does the local
// teacher.
func TestHTTPTeacherAgainstServe(t *testing.T) {
	e := tinyEngine(t)
	url := startServe(t, e, func(c *serve.Config) {
		c.ModelName, c.APIKey, c.Chat = "tiny", "k", chatTemplate
	})
	prompts := []string{"Write a task.", "1. Instruction: Add", "###\n4. Instruction:"}
	p := Params{MaxTokens: 24, Temperature: 0.9, TopP: 0.95, Stop: []string{"\n20", "20."}, Seed: 40}
	ctx := context.Background()

	httpT := &HTTPTeacher{BaseURL: url, Model: "tiny", APIKey: "k", Timeout: 10 * time.Second}
	got, err := httpT.Complete(ctx, prompts, p)
	if err != nil {
		t.Fatal(err)
	}
	local, err := LocalTeacher{Engine: e}.Complete(ctx, prompts, p)
	if err != nil {
		t.Fatal(err)
	}
	for i, prompt := range prompts {
		want, err := e.Generate(ctx, []generate.Request{{Prompt: e.Tokenizer().Encode(prompt, true), Options: generate.Options{
			MaxTokens: 24, Temperature: 0.9, TopP: 0.95, Stop: p.Stop, Seed: 40 + uint64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		w := Completion{Text: want[0].Text, Truncated: want[0].FinishReason == generate.FinishLength}
		if got[i] != w || local[i] != w {
			t.Errorf("prompt %d: http %+v, local %+v, engine %+v", i, got[i], local[i], w)
		}
	}

	// Chat mode sends the prompt as one user message.
	chatT := &HTTPTeacher{BaseURL: url, Model: "tiny", APIKey: "k", Chat: true, Timeout: 10 * time.Second}
	gotChat, err := chatT.Complete(ctx, prompts[:1], p)
	if err != nil {
		t.Fatal(err)
	}
	rendered, _ := chatTemplate([]serve.Message{{Role: "user", Content: prompts[0]}})
	want, err := e.Generate(ctx, []generate.Request{{Prompt: e.Tokenizer().Encode(rendered, false), Options: generate.Options{
		MaxTokens: 24, Temperature: 0.9, TopP: 0.95, Stop: p.Stop, Seed: 40}}})
	if err != nil {
		t.Fatal(err)
	}
	if gotChat[0].Text != want[0].Text {
		t.Errorf("chat: %q, engine %q", gotChat[0].Text, want[0].Text)
	}

	// A wrong key is a client error: no retries.
	bad := &HTTPTeacher{BaseURL: url, Model: "tiny", APIKey: "nope", Timeout: time.Minute, Retries: 3, Backoff: time.Hour}
	if _, err := bad.Complete(ctx, prompts[:1], p); err == nil || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "attempt 1") {
		t.Errorf("wrong key: %v", err)
	}
	// So is an unknown model.
	other := &HTTPTeacher{BaseURL: url, Model: "gpt-x", APIKey: "k", Timeout: time.Minute, Retries: 3, Backoff: time.Hour}
	if _, err := other.Complete(ctx, prompts[:1], p); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("unknown model: %v", err)
	}
	// Nothing listening: network errors are retried, then reported.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	down := &HTTPTeacher{BaseURL: dead, Timeout: time.Minute, Retries: 2, Backoff: time.Millisecond}
	if _, err := down.Complete(ctx, prompts[:1], p); err == nil || !strings.Contains(err.Error(), "attempt 3") {
		t.Errorf("server down: %v", err)
	}
	// Retries 0 means one attempt only.
	down.Retries = 0
	if _, err := down.Complete(ctx, prompts[:1], p); err == nil || !strings.Contains(err.Error(), "attempt 1:") {
		t.Errorf("server down, no retries: %v", err)
	}
}

// scheduledServer is our server over a tiny engine, its scheduler running
// until the test ends, for tests that put a handler in front of it.
func scheduledServer(t *testing.T) *serve.Server {
	t.Helper()
	s, err := serve.New(tinyEngine(t), serve.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunScheduler(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// A busy server answers 429 with Retry-After; the teacher waits as long
// as it says and retries. A handler in front of our server answers the
// first request so, deterministically (the server's own 429 is tested in
// serve), and passes the rest on.
func TestHTTPTeacherRetriesWhenBusy(t *testing.T) {
	s := scheduledServer(t)
	var mu sync.Mutex
	var arrivals []time.Time
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		first := len(arrivals) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"busy"}}`, http.StatusTooManyRequests)
			return
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	teacher := &HTTPTeacher{BaseURL: front.URL + "/v1", Timeout: time.Minute, Retries: 5, Backoff: time.Millisecond, MaxBackoff: 2 * time.Second}
	got, err := teacher.Complete(context.Background(), []string{"hello"}, Params{MaxTokens: 4, Temperature: 1, TopP: 1})
	if err != nil {
		t.Fatalf("after a retry: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || len(arrivals) != 2 {
		t.Fatalf("got %v after %d requests, want one completion after 2", got, len(arrivals))
	}
	// The backoff alone would retry after 1 ms.
	if wait := arrivals[1].Sub(arrivals[0]); wait < 900*time.Millisecond {
		t.Fatalf("retried after %v: Retry-After (1 s) not honoured", wait)
	}
}

// A whole run with the HTTP teacher against our server: a random model
// writes no parsable tasks, so every reply is counted as malformed or
// truncated, and the (empty) dataset is still written.
func TestRunWithHTTPTeacher(t *testing.T) {
	e := tinyEngine(t)
	url := startServe(t, e, nil)
	teacher := DefaultHTTPTeacher()
	teacher.BaseURL = url
	cfg := DefaultConfig()
	cfg.Teacher, cfg.Output = &teacher, t.TempDir()+"/gen.arrow"
	cfg.NumInstructions, cfg.RequestBatchSize, cfg.MaxBatches, cfg.MaxTokens, cfg.Seed = 5, 3, 2, 16, 1
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Batches != 2 || rep.Requests != 6 || rep.Rejected[ReasonMalformed]+rep.Rejected[ReasonTruncated] != 6 {
		t.Fatalf("report %+v", rep)
	}
	if rows := readRows(t, cfg.Output); len(rows) != rep.Kept {
		t.Fatalf("%d rows, report says %d", len(rows), rep.Kept)
	}
}

// A teacher whose server answers garbage: a 200 reply that is not a
// completion, or one without choices, is retried like a network error;
// when every attempt fails the run stops with an error naming the batch and
// the reply, and what earlier batches kept is on disk and resumes.
func TestRunWithGarbageTeacher(t *testing.T) {
	s := scheduledServer(t)
	var mu sync.Mutex
	garbage := 0 // replies left to spoil
	requests := 0
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		spoil := garbage > 0
		if spoil {
			garbage--
		}
		n := requests
		mu.Unlock()
		if spoil {
			if n%2 == 0 {
				fmt.Fprint(w, `{"choices": []}`)
			} else {
				fmt.Fprint(w, "<html>upstream hiccup</html>")
			}
			return
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	teacher := DefaultHTTPTeacher()
	teacher.BaseURL, teacher.Retries, teacher.Backoff = front.URL+"/v1", 2, time.Millisecond
	cfg := DefaultConfig()
	cfg.Teacher, cfg.Output = &teacher, t.TempDir()+"/gen.arrow"
	cfg.NumInstructions, cfg.RequestBatchSize, cfg.MaxBatches, cfg.MaxTokens, cfg.Seed = 5, 1, 3, 16, 1

	// Two spoilt replies, then good ones: the retries absorb them.
	garbage = 2
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("two garbage replies within the retries: %v", err)
	}
	if rep.Batches != 3 || requests != 5 {
		t.Fatalf("report %+v after %d requests; want 3 batches in 5 requests", rep, requests)
	}
	// Garbage on every attempt of batch 3 (a new run of 4 batches): the run
	// fails naming it, after the three batches of the first run resumed.
	garbage, requests = 3, 0
	cfg.MaxBatches = 4
	_, err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "self-instruct batch 3") || !strings.Contains(err.Error(), "attempt 3") ||
		!(strings.Contains(err.Error(), "reply is not a completion") || strings.Contains(err.Error(), "no choices")) {
		t.Fatalf("garbage on every attempt: %v", err)
	}
	if requests != 3 {
		t.Errorf("%d requests, want 3 attempts of the one new batch", requests)
	}
}

// A local teacher with a template sends the prompt as one user message:
// with Alpaca's, the model continues the Alpaca prompt of the text, as a
// model fine-tuned on instructions expects; an unknown template is an
// error naming it.
func TestLocalTeacherTemplate(t *testing.T) {
	e := tinyEngine(t)
	ctx := context.Background()
	p := Params{MaxTokens: 12, Temperature: 0.9, TopP: 1, Seed: 5}
	got, err := LocalTeacher{Engine: e, Template: tokenizer.TemplateAlpaca}.Complete(ctx, []string{"List tasks."}, p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.Generate(ctx, []generate.Request{{Prompt: e.Tokenizer().Encode(tokenizer.FormatAlpaca("List tasks.", ""), true),
		Options: generate.Options{MaxTokens: 12, Temperature: 0.9, TopP: 1, Seed: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Text != want[0].Text {
		t.Errorf("alpaca template: %q, engine on the Alpaca prompt %q", got[0].Text, want[0].Text)
	}
	raw, err := LocalTeacher{Engine: e}.Complete(ctx, []string{"List tasks."}, p)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0].Text == got[0].Text {
		t.Errorf("the template changed nothing: %q", raw[0].Text)
	}
	if _, err := (LocalTeacher{Engine: e, Template: "vicuna"}).Complete(ctx, []string{"x"}, p); err == nil || !strings.Contains(err.Error(), "vicuna") {
		t.Errorf("unknown template: %v", err)
	}
}
