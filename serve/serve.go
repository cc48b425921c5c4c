// Package serve exposes a generation engine as an OpenAI-compatible HTTP
// API: /v1/completions, /v1/chat/completions (both with `stream: true` as
// server-sent events) and /v1/models. Concurrent requests share the engine
// through continuous batching; request size, prompt length, max_tokens and
// the number of waiting requests are bounded, each with a clear 4xx error in
// OpenAI's error format; an optional bearer token guards every endpoint.
//
// May import: every stage, the shared fine-tuning layer (finetune, train,
// lora), model/..., tokenizer/..., data/..., checkpoints/..., internal/blas
// and internal/kernel; not cmd.
package serve

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gotune/gotune/model/generate"
)

// Keys of Config: the flags of `gotune serve` and the keys under `serve:`
// in a --config file (with underscores). KeyAddr is ListenAndServe's
// address.
const (
	KeyAddr             = "addr"
	KeyAPIKey           = "api-key"
	KeyModelName        = "model-name"
	KeyMaxRequestBytes  = "max-request-bytes"
	KeyMaxPromptTokens  = "max-prompt-tokens"
	KeyMaxTokens        = "max-tokens"
	KeyDefaultMaxTokens = "default-max-tokens"
	KeyMaxBatch         = "max-batch"
	KeyMaxPending       = "max-pending"
	KeyShutdownTimeout  = "shutdown-timeout"
)

// DefaultAddr is the address `gotune serve` listens on: loopback only.
const DefaultAddr = "127.0.0.1:8080"

// Config sets the server's identity and limits. Start from DefaultConfig;
// New refuses a Config that Validate rejects.
type Config struct {
	ModelName        string        // id in /v1/models and responses
	APIKey           string        // bearer token required on every request ("" = none)
	MaxRequestBytes  int64         // request body limit
	MaxPromptTokens  int           // prompt length limit (0: the model's context, or 8192 if it has no limit)
	MaxTokens        int           // limit on a request's max_tokens
	DefaultMaxTokens int           // max_tokens when a request omits it (capped at MaxTokens)
	MaxChoices       int           // limit on n × prompts of one request
	MaxBatch         int           // sequences decoded together
	MaxPending       int           // requests admitted at once, running or waiting; more get 429
	ShutdownTimeout  time.Duration // how long shutdown waits for requests in flight
	// Chat renders messages into a prompt ending where the assistant's
	// reply begins; nil disables /v1/chat/completions.
	Chat func(msgs []Message) (string, error)
	// ChatStopTokens end chat replies besides the tokenizer's EOS (e.g. the
	// template's end-of-turn token).
	ChatStopTokens []int
}

// DefaultConfig is the server of `gotune serve`: model id "gotune", no
// API key, 1 MiB requests, prompts up to the model's context, max_tokens
// 256 by default and 2048 at most, up to 8 choices a request, 8 sequences
// decoded together, 64 requests admitted, 30 s to drain on shutdown.
func DefaultConfig() Config {
	return Config{
		ModelName: "gotune", MaxRequestBytes: 1 << 20, MaxTokens: 2048, DefaultMaxTokens: 256,
		MaxChoices: 8, MaxBatch: 8, MaxPending: 64, ShutdownTimeout: 30 * time.Second,
	}
}

// Validate reports the first invalid field, naming its key (MaxChoices,
// which has no flag, by its field name).
func (c Config) Validate() error {
	if c.ModelName == "" {
		return fmt.Errorf("serve: %s must not be empty", KeyModelName)
	}
	if c.MaxRequestBytes <= 0 {
		return fmt.Errorf("serve: %s must be positive, got %d", KeyMaxRequestBytes, c.MaxRequestBytes)
	}
	if c.MaxPromptTokens < 0 {
		return fmt.Errorf("serve: %s must not be negative (0: the model's context), got %d", KeyMaxPromptTokens, c.MaxPromptTokens)
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{KeyMaxTokens, c.MaxTokens},
		{KeyDefaultMaxTokens, c.DefaultMaxTokens},
		{"MaxChoices", c.MaxChoices},
		{KeyMaxBatch, c.MaxBatch},
		{KeyMaxPending, c.MaxPending},
	} {
		if f.v <= 0 {
			return fmt.Errorf("serve: %s must be positive, got %d", f.key, f.v)
		}
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("serve: %s must be positive, got %s", KeyShutdownTimeout, c.ShutdownTimeout)
	}
	return nil
}

// Server answers the API from one engine.
type Server struct {
	cfg     Config
	e       *generate.Engine
	tok     generate.Tokenizer
	sched   *generate.Scheduler
	pending chan struct{} // admission tokens
	created int64
	mux     *http.ServeMux
}

// New returns a server over e, whose tokenizer must be set.
func New(e *generate.Engine, cfg Config) (*Server, error) {
	if e.Tokenizer() == nil {
		return nil, errors.New("serve: the engine has no tokenizer")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPromptTokens == 0 {
		cfg.MaxPromptTokens = e.MaxPositions()
		if cfg.MaxPromptTokens <= 0 { // a model without a position limit
			cfg.MaxPromptTokens = 8192
		}
	}
	// A request that omits max_tokens may not get more than one that asks.
	cfg.DefaultMaxTokens = min(cfg.DefaultMaxTokens, cfg.MaxTokens)
	s := &Server{
		cfg: cfg, e: e, tok: e.Tokenizer(),
		sched:   generate.NewScheduler(e, cfg.MaxBatch),
		pending: make(chan struct{}, cfg.MaxPending),
		created: time.Now().Unix(),
		mux:     http.NewServeMux(),
	}
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /v1/models/{id}", s.model)
	s.mux.HandleFunc("POST /v1/completions", s.completions)
	s.mux.HandleFunc("POST /v1/chat/completions", s.chat)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	return s, nil
}

// Handler is the API with authentication and the body limit applied. The
// scheduler must be running (Serve runs it; tests may call RunScheduler).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.APIKey != "" && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gotune"`)
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "missing or invalid API key: send `Authorization: Bearer <key>`")
			return
		}
		if r.ContentLength > s.cfg.MaxRequestBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
				fmt.Sprintf("request body of %d bytes exceeds the limit of %d", r.ContentLength, s.cfg.MaxRequestBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
		s.mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.cfg.APIKey)) == 1
}

// RunScheduler runs the batching loop until ctx is done.
func (s *Server) RunScheduler(ctx context.Context) error { return s.sched.Run(ctx) }

// Serve answers on ln until ctx is done, then shuts down gracefully:
// it stops accepting, lets requests in flight finish (up to
// ShutdownTimeout), and stops the engine's scheduler.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	schedCtx, stopSched := context.WithCancel(context.Background())
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		s.sched.Run(schedCtx)
	}()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		err = srv.Shutdown(sctx)
		cancel()
		if err != nil {
			srv.Close()
		}
		<-errc
	}
	stopSched()
	<-schedDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ListenAndServe binds addr (host:port, e.g. DefaultAddr) and serves until
// ctx is done. ready, when non-nil, receives the bound address.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	if addr == "" {
		// net.Listen would bind every interface on a random port.
		return fmt.Errorf("serve: %s must not be empty (e.g. %s)", KeyAddr, DefaultAddr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	return s.Serve(ctx, ln)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: []modelCard{s.card()}})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.cfg.ModelName {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("model %q does not exist; this server has %q", id, s.cfg.ModelName))
		return
	}
	writeJSON(w, http.StatusOK, s.card())
}

func (s *Server) card() modelCard {
	return modelCard{ID: s.cfg.ModelName, Object: "model", Created: s.created, OwnedBy: "gotune"}
}

// httpError is a request error with its status, OpenAI type and code.
type httpError struct {
	status      int
	typ, code   string
	msg         string
	retryAfterS int
}

func (e *httpError) Error() string { return e.msg }

func badRequest(code, format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, typ: "invalid_request_error", code: code, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	var body apiError
	body.Error.Message, body.Error.Type = msg, typ
	if code != "" {
		body.Error.Code = &code
	}
	writeJSON(w, status, body)
}

func writeHTTPError(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: http.StatusInternalServerError, typ: "server_error", msg: err.Error()}
	}
	if he.retryAfterS > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(he.retryAfterS))
	}
	writeError(w, he.status, he.typ, he.code, he.msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body, mapping an oversized body to 413.
func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &httpError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", code: "request_too_large",
				msg: fmt.Sprintf("request body exceeds the limit of %d bytes", mb.Limit)}
		}
		return badRequest("invalid_json", "invalid JSON body: %v", err)
	}
	return nil
}

// admit takes one of MaxPending slots, or fails with 429.
func (s *Server) admit() (release func(), err error) {
	select {
	case s.pending <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-s.pending }) }, nil
	default:
		return nil, &httpError{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "server_busy",
			msg: fmt.Sprintf("the server is busy with %d requests; retry later", s.cfg.MaxPending), retryAfterS: 1}
	}
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
