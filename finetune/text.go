// Text corpora: documents read from a file, packed into one token stream
// and cut into windows, and the mean token loss of a model on them. The
// pretrain stage trains on them; pretrain and eval score them.

package finetune

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// Encoder is what Tokenize needs of a tokenizer
// (*tokenizer.Tokenizer satisfies it).
type Encoder interface {
	Encode(text string, addSpecial bool) []int
	EOS() int
}

// ReadCorpus reads documents from a file: a `.jsonl` file holds one JSON
// object with a "text" string per line; any other file is plain text whose
// documents are separated by blank lines, or, when it has no blank line,
// are its lines. Empty documents are skipped; a bad JSON line is an error
// naming it.
func ReadCorpus(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	return parseCorpus(raw, strings.HasSuffix(path, ".jsonl"), path)
}

// parseCorpus splits the bytes of a corpus file named path into documents.
func parseCorpus(raw []byte, jsonl bool, path string) ([]string, error) {
	var docs []string
	if jsonl {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<16), 1<<28)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var rec struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal(line, &rec); err != nil {
				return nil, fmt.Errorf("corpus %s: line %d: %w", path, n, err)
			}
			if rec.Text == nil {
				return nil, fmt.Errorf("corpus %s: line %d: no \"text\" string", path, n)
			}
			if strings.TrimSpace(*rec.Text) != "" {
				docs = append(docs, *rec.Text)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("corpus %s: %w", path, err)
		}
	} else {
		lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(raw), "\r\n", "\n")), "\n")
		paragraphs := slices.ContainsFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "" })
		var cur []string
		flush := func() {
			if d := strings.TrimSpace(strings.Join(cur, "\n")); d != "" {
				docs = append(docs, d)
			}
			cur = cur[:0]
		}
		for _, l := range lines {
			if paragraphs && strings.TrimSpace(l) != "" {
				cur = append(cur, l) // inside a paragraph
				continue
			}
			if !paragraphs {
				cur = append(cur, l) // a line is a document
			}
			flush()
		}
		flush()
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("corpus %s: no documents", path)
	}
	return docs, nil
}

// Tokenize encodes each document with the tokenizer's special tokens (BOS
// where its post-processor adds one) and ends it with EOS, concatenating
// everything into one token stream, as GPT-2 and LLaMA pretraining pack
// documents. Work is spread over the available cores; the result does not
// depend on how.
func Tokenize(tok Encoder, docs []string) []int32 {
	parts := make([][]int, len(docs))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(docs)/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(docs); i += workers {
				ids := tok.Encode(docs[i], true)
				if eos := tok.EOS(); eos >= 0 && (len(ids) == 0 || ids[len(ids)-1] != eos) {
					ids = append(ids, eos)
				}
				parts[i] = ids
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]int32, 0, n)
	for _, p := range parts {
		for _, id := range p {
			out = append(out, int32(id))
		}
	}
	return out
}

// Windows cuts a token stream into training examples of T inputs and T
// next-token targets: window k reads stream[kT : kT+T+1], so consecutive
// windows overlap by one token and every token after the first is a target
// exactly once. The last window may be shorter than T.
type Windows struct {
	Stream []int32
	T      int
}

// Len is the number of windows (0 when the stream has fewer than 2 tokens).
func (w Windows) Len() int {
	if len(w.Stream) < 2 {
		return 0
	}
	return (len(w.Stream) - 2 + w.T) / w.T
}

// Full is the number of windows with all T targets.
func (w Windows) Full() int {
	if len(w.Stream) < w.T+1 {
		return 0
	}
	return (len(w.Stream) - 1) / w.T
}

// Fill writes window k into row r of tokens, targets and weights (each
// B·T long): weight 1 for real targets, 0 for padding after a short last
// window (padding repeats token pad).
func (w Windows) Fill(k, r int, tokens, targets []int32, weights []float32, pad int32) int {
	start := k * w.T
	n := min(w.T, len(w.Stream)-1-start)
	row := r * w.T
	copy(tokens[row:row+n], w.Stream[start:start+n])
	copy(targets[row:row+n], w.Stream[start+1:start+1+n])
	for i := range w.T {
		if i < n {
			weights[row+i] = 1
		} else {
			tokens[row+i], targets[row+i], weights[row+i] = pad, pad, 0
		}
	}
	return n
}

// WeightsInput is the input vector of a token-loss program that weighs
// each target (1 scored, 0 masked or padding): TokenLoss declares it, and
// the loss loops fill it.
const WeightsInput = "weights"

// TokenLoss is the head of a token-loss program, a BuildFunc: the mean
// negative log-likelihood of the targets weighted by WeightsInput, the
// loss of causal language modelling (pretraining on every token, SFT on
// the completion tokens only).
func TokenLoss(g *model.Graph, _ map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
	return g.MeanNLL(g.InputVector(WeightsInput, g.B*g.T)), nil, nil
}

// WindowLoss returns the mean token loss over the first maxWindows windows
// of s (all when 0) and the number of targets scored. run executes a
// forward program of g whose output loss is the mean loss of g's B rows
// weighted by the input vector WeightsInput (as TokenLoss builds it); s.T
// must be g.T. Rows past the last window are filled with weight 0.
func WindowLoss(ctx context.Context, g *model.Graph, run func() error, loss *gorgonia.Node, s Windows, maxWindows int, pad int32) (float64, int, error) {
	if s.T != g.T {
		return 0, 0, fmt.Errorf("windows of %d tokens for a program of %d", s.T, g.T)
	}
	weights := g.Vector(WeightsInput)
	n := s.Len()
	if maxWindows > 0 {
		n = min(n, maxWindows)
	}
	// Under mpirun the ranks share the forward passes and sum the gathered
	// losses in pass order, as one process does.
	parts, err := train.ShareWork(ctx, nil, (n+g.B-1)/g.B, func(lo, hi int) ([]lossSum, error) {
		out := make([]lossSum, 0, hi-lo)
		for k := lo * g.B; k < min(hi*g.B, n); k += g.B {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			batch := 0
			for r := range g.B {
				if k+r < n {
					batch += s.Fill(k+r, r, g.In.Tokens, g.In.Targets, weights, pad)
				} else {
					s.Fill(0, r, g.In.Tokens, g.In.Targets, weights, pad)
					clear(weights[r*g.T : (r+1)*g.T])
				}
			}
			if err := run(); err != nil {
				return nil, err
			}
			// The loss is the mean over the batch's weighted tokens.
			out = append(out, lossSum{Sum: float64(model.Value32(loss)[0]) * float64(batch), N: float64(batch)})
		}
		return out, nil
	})
	if err != nil {
		return 0, 0, err
	}
	var sum float64
	var count int
	for _, p := range parts {
		sum += p.Sum
		count += int(p.N)
	}
	if count == 0 {
		return math.NaN(), 0, nil
	}
	return sum / float64(count), count, nil
}

// TextLoss is the mean token loss of the weights on every window of s,
// B windows per forward pass, and the number of targets scored: the
// perplexity measure of a text (exp of the loss).
func TextLoss(ctx context.Context, w *model.Weights, s Windows, B int, pad int32) (float64, int, error) {
	if B < 1 {
		return 0, 0, fmt.Errorf("text loss: %d windows per pass", B)
	}
	g, err := model.Build(w, model.GraphOptions{B: B, T: s.T})
	if err != nil {
		return 0, 0, err
	}
	loss, _, err := TokenLoss(g, nil)
	if err != nil {
		return 0, 0, err
	}
	prog, err := g.Compile(nil, nil, loss)
	if err != nil {
		return 0, 0, err
	}
	return WindowLoss(ctx, g, prog.Run, loss, s, 0, pad)
}
