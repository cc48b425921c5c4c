package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/serve"
)

var serveCmd = &cobra.Command{
	Use:   "serve",
	Short: "Serve a model over an OpenAI-compatible HTTP API",
	Long: `Answer /v1/completions, /v1/chat/completions (with "stream": true as
server-sent events) and /v1/models. Concurrent requests are decoded together.
The server binds 127.0.0.1 unless --addr says otherwise. With --api-key (or the
environment variable GOTUNE_SERVE_API_KEY) every request must carry
"Authorization: Bearer KEY". Interrupting the process lets requests in flight
finish before it exits.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "serve"
		e, tok, err := loadEngine(s)
		if err != nil {
			return err
		}
		c := serve.Config{
			ModelName: cfgString(s, "model-name"), APIKey: cfgString(s, "api-key"),
			MaxRequestBytes: int64(cfgInt(s, "max-request-bytes")), MaxPromptTokens: cfgInt(s, "max-prompt-tokens"),
			MaxTokens: cfgInt(s, "max-tokens"), DefaultMaxTokens: cfgInt(s, "default-max-tokens"),
			MaxBatch: cfgInt(s, "max-batch"), MaxPending: cfgInt(s, "max-pending"),
			ShutdownTimeout: cfg.GetDuration(configKey(s, "shutdown-timeout")),
		}
		if t := cfgString(s, "chat-template"); t != "none" {
			c.Chat = func(msgs []serve.Message) (string, error) {
				cm := make([]chatMessage, len(msgs))
				for i, m := range msgs {
					cm[i] = chatMessage{m.Role, m.Content}
				}
				text, special, err := renderChat(tok, t, cm)
				if err == nil && special && tok.BOS() >= 0 {
					// The server encodes chat prompts without special
					// tokens; give the template's text its BOS.
					bos, _ := tok.Token(tok.BOS())
					text = bos + text
				}
				return text, err
			}
			c.ChatStopTokens = chatStopTokens(tok)
		}
		srv, err := serve.New(e, c)
		if err != nil {
			return err
		}
		return srv.ListenAndServe(cmd.Context(), cfgString(s, "addr"), func(a net.Addr) {
			fmt.Fprintf(os.Stderr, "gotune: serving on http://%s/v1\n", a)
		})
	},
}

func init() {
	modelFlags(serveCmd)
	f := serveCmd.Flags()
	f.String("addr", "127.0.0.1:8080", "host:port to listen on")
	f.String("api-key", "", "bearer token every request must carry (or GOTUNE_SERVE_API_KEY)")
	f.String("model-name", "gotune", "model id reported and accepted by the API")
	f.String("chat-template", "chatml", "chat format for /v1/chat/completions: alpaca, chatml, llama3, jinja, or none to disable")
	f.Int("max-request-bytes", 1<<20, "largest request body")
	f.Int("max-prompt-tokens", 0, "longest prompt (0: the model's context)")
	f.Int("max-tokens", 2048, "largest max_tokens a request may ask for")
	f.Int("default-max-tokens", 256, "max_tokens when a request omits it")
	f.Int("max-batch", 8, "sequences decoded together")
	f.Int("max-pending", 64, "requests running or waiting; more are refused with 429")
	f.Duration("shutdown-timeout", 30*time.Second, "how long shutdown waits for requests in flight")
	bindFlags(serveCmd, "serve")
	rootCmd.AddCommand(serveCmd)
}
