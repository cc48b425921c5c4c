package main

import (
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/serve"
)

// sectionServe is serve's section in a --config file.
const sectionServe = "serve"

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
		const s = sectionServe
		c := serve.DefaultConfig()
		c.ModelName, c.APIKey = cfgString(s, serve.KeyModelName), cfgString(s, serve.KeyAPIKey)
		c.MaxRequestBytes = cfg.GetInt64(configKey(s, serve.KeyMaxRequestBytes))
		c.MaxPromptTokens = cfgInt(s, serve.KeyMaxPromptTokens)
		c.MaxTokens, c.DefaultMaxTokens = cfgInt(s, serve.KeyMaxTokens), cfgInt(s, serve.KeyDefaultMaxTokens)
		c.MaxBatch, c.MaxPending = cfgInt(s, serve.KeyMaxBatch), cfgInt(s, serve.KeyMaxPending)
		c.ShutdownTimeout = cfg.GetDuration(configKey(s, serve.KeyShutdownTimeout))
		if err := c.Validate(); err != nil {
			return err
		}
		addr := cfgString(s, serve.KeyAddr)
		if addr == "" {
			return fmt.Errorf("serve: --%s must not be empty (e.g. %s)", serve.KeyAddr, serve.DefaultAddr)
		}
		t, err := chatTemplate(s)
		if err != nil {
			return err
		}
		e, tok, err := loadEngine(s)
		if err != nil {
			return err
		}
		if t != "none" {
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
		return srv.ListenAndServe(cmd.Context(), addr, func(a net.Addr) {
			fmt.Fprintf(os.Stderr, "gotune: serving on http://%s/v1\n", a)
		})
	},
}

func init() {
	d := serve.DefaultConfig()
	modelFlags(serveCmd)
	f := serveCmd.Flags()
	f.String(serve.KeyAddr, serve.DefaultAddr, "host:port to listen on")
	f.String(serve.KeyAPIKey, d.APIKey, "bearer token every request must carry (or GOTUNE_SERVE_API_KEY)")
	f.String(serve.KeyModelName, d.ModelName, "model id reported and accepted by the API")
	f.String(chatKeyTemplate, "chatml", "chat format for /v1/chat/completions: alpaca, chatml, llama3, jinja, or none to disable")
	f.Int(serve.KeyMaxRequestBytes, int(d.MaxRequestBytes), "largest request body")
	f.Int(serve.KeyMaxPromptTokens, d.MaxPromptTokens, "longest prompt (0: the model's context)")
	f.Int(serve.KeyMaxTokens, d.MaxTokens, "largest max_tokens a request may ask for")
	f.Int(serve.KeyDefaultMaxTokens, d.DefaultMaxTokens, "max_tokens when a request omits it (at most --max-tokens)")
	f.Int(serve.KeyMaxBatch, d.MaxBatch, "sequences decoded together")
	f.Int(serve.KeyMaxPending, d.MaxPending, "requests running or waiting; more are refused with 429")
	f.Duration(serve.KeyShutdownTimeout, d.ShutdownTimeout, "how long shutdown waits for requests in flight")
	bindFlags(serveCmd, sectionServe)
	rootCmd.AddCommand(serveCmd)
}
