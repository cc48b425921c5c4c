package pretrain

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Encoder is what the data pipeline needs of a tokenizer
// (*tokenizer.Tokenizer satisfies it).
type Encoder interface {
	Encode(text string, addSpecial bool) []int
	EOS() int
	VocabSize() int
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

// SplitHeldOut divides documents into training and held-out sets: a
// document is held out when a hash of its text falls in the first
// fraction of the range, so the split is stable under reordering and
// appending, and duplicates of a document land on the same side.
func SplitHeldOut(docs []string, fraction float64) (trainDocs, heldOut []string) {
	for _, d := range docs {
		h := fnv.New64a()
		h.Write([]byte(d))
		if float64(h.Sum64()>>11)/(1<<53) < fraction {
			heldOut = append(heldOut, d)
		} else {
			trainDocs = append(trainDocs, d)
		}
	}
	return trainDocs, heldOut
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

// Order is a resumable pass over the full training windows in a shuffled
// order that is a function of the seed and the epoch alone.
type Order struct {
	Seed  uint64 `json:"seed"`
	N     int    `json:"windows"`
	Epoch int    `json:"epoch"`
	Pos   int    `json:"pos"`
	perm  []int
}

// Next returns the next window index, moving to a fresh permutation at the
// end of an epoch.
func (o *Order) Next() int {
	if o.perm == nil {
		o.perm = rand.New(rand.NewPCG(o.Seed, uint64(o.Epoch))).Perm(o.N)
	}
	k := o.perm[o.Pos]
	o.Pos++
	if o.Pos == o.N {
		o.Epoch, o.Pos, o.perm = o.Epoch+1, 0, nil
	}
	return k
}

// Progress is the fractional number of epochs completed.
func (o *Order) Progress() float64 { return float64(o.Epoch) + float64(o.Pos)/float64(o.N) }

// MarshalState and RestoreState are the train.Hooks pair for the order.
func (o *Order) MarshalState() (json.RawMessage, error) { return json.Marshal(o) }

// RestoreState puts back a position saved by MarshalState, checking that
// it belongs to the same data.
func (o *Order) RestoreState(raw json.RawMessage) error {
	var s Order
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.Seed != o.Seed || s.N != o.N {
		return fmt.Errorf("saved data position is for %d windows with seed %d, this corpus has %d with seed %d", s.N, s.Seed, o.N, o.Seed)
	}
	if s.Pos < 0 || s.Pos >= s.N || s.Epoch < 0 {
		return errors.New("saved data position is out of range")
	}
	o.Epoch, o.Pos, o.perm = s.Epoch, s.Pos, nil
	return nil
}
