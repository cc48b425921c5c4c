package tokenizer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// NewByteLevel returns a byte-level tokenizer with no merges: ids 0..255
// are the bytes, followed by the given special tokens. It is what Train
// returns when no merge can be learned, and round-trips any UTF-8 text.
func NewByteLevel(specials []string) *Tokenizer {
	t, err := buildByteLevel(nil, specials)
	if err != nil {
		panic(fmt.Sprintf("tokenizer: NewByteLevel(%q): %v", specials, err))
	}
	return t
}

// Train learns a byte-level BPE tokenizer of at most vocabSize tokens from
// texts (Sennrich et al. 2016, §3.2, over bytes as in GPT-2): ids 0..255 are
// the bytes, then the special tokens, then one token per merge, learned by
// repeatedly merging the most frequent adjacent pair (ties to the smaller
// pair of ids, as Hugging Face's BpeTrainer does). Texts are split like
// Llama-3's pre-tokenizer and special tokens in them are left whole.
//
// Special tokens named like "<|bos|>"/"<s>", "<|eos|>"/"</s>" and
// "<|pad|>" become the BOS, EOS and PAD tokens; the post-processor puts BOS
// before every sequence encoded with special tokens.
func Train(texts []string, vocabSize int, specials []string) (*Tokenizer, error) {
	if err := (TrainConfig{VocabSize: vocabSize, Specials: specials}).Validate(); err != nil {
		return nil, err
	}
	base := 256 + len(specials)
	words := countWords(texts, specials)
	merges := learnMerges(words, vocabSize, base, specials)
	return buildByteLevel(merges, specials)
}

// Keys of TrainConfig: the flags of `gotune tokenizer train` and the keys
// under `tokenizer: {train: …}` in a --config file (with underscores).
const (
	KeyVocabSize = "vocab-size"
	KeySpecial   = "special"
)

// TrainConfig is what TrainFiles learns: at most VocabSize tokens, of
// which the 256 bytes and then Specials come first.
type TrainConfig struct {
	VocabSize int      // tokens at most, bytes and special tokens included
	Specials  []string // special tokens, distinct and non-empty
}

// DefaultTrainConfig learns 4096 tokens with the special tokens <|bos|>,
// <|eos|> and <|pad|>.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{VocabSize: 4096, Specials: []string{"<|bos|>", "<|eos|>", "<|pad|>"}}
}

// Validate reports the first invalid field, naming its key.
func (c TrainConfig) Validate() error {
	if err := checkSpecials(c.Specials); err != nil {
		return fmt.Errorf("train: %s: %w", KeySpecial, err)
	}
	if base := 256 + len(c.Specials); c.VocabSize < base {
		return fmt.Errorf("train: %s %d is below the %d byte and special tokens", KeyVocabSize, c.VocabSize, base)
	}
	return nil
}

// TrainFiles trains on the contents of files (see Train).
func TrainFiles(paths []string, c TrainConfig) (*Tokenizer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, errors.New("train: no input files")
	}
	texts := make([]string, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		texts = append(texts, string(b))
	}
	return Train(texts, c.VocabSize, c.Specials)
}

func checkSpecials(specials []string) error {
	seen := map[string]bool{}
	for i, s := range specials {
		if s == "" {
			return fmt.Errorf("special token %d is empty", i)
		}
		if seen[s] {
			return fmt.Errorf("special token %q given twice", s)
		}
		seen[s] = true
	}
	return nil
}

// trainWord is a distinct pre-token of the corpus as a symbol sequence.
type trainWord struct {
	syms  []int32
	count int64
}

// trainPattern is the pre-tokenizer of trained tokenizers (Llama-3's).
var trainPattern = &wordPattern{maxDigits: 3, foldCase: true}

// countWords splits texts around special tokens and into pre-tokens, and
// counts each distinct pre-token as a sequence of byte symbols.
func countWords(texts []string, specials []string) []trainWord {
	var tokens []AddedToken
	for i, s := range specials {
		tokens = append(tokens, AddedToken{ID: 256 + i, Content: s, Special: true})
	}
	av := newAddedVocab(tokens, nil)
	counts := map[string]int64{}
	var sc scratch
	var splits []addedSplit
	for _, text := range texts {
		text = strings.ToValidUTF8(text, "\uFFFD")
		splits = av.find(splits[:0], text, av.raw)
		for _, sp := range splits {
			if sp.token >= 0 {
				continue
			}
			seg := text[sp.start:sp.end]
			for _, x := range splitString(&sc, seg, trainPattern, splitIsolated, false) {
				counts[seg[x.start:x.end]]++
			}
		}
	}
	words := make([]trainWord, 0, len(counts))
	for w, c := range counts {
		syms := make([]int32, len(w))
		for i := 0; i < len(w); i++ {
			syms[i] = int32(w[i])
		}
		words = append(words, trainWord{syms, c})
	}
	return words
}

// pairCount is a heap entry: a pair and its count when pushed.
type pairCount struct {
	pair  uint64
	count int64
}

type pairHeap []pairCount

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	return h[i].pair < h[j].pair
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairCount)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// learnMerges returns the merges that grow the vocabulary to vocabSize
// (or as far as the corpus allows), as (left, right, result) symbol ids;
// symbols below 256 are bytes and a merge's result gets the next free id
// from firstID on, or the id of an equal earlier token, whose bytes it
// shares.
func learnMerges(words []trainWord, vocabSize, firstID int, specials []string) [][3]int32 {
	counts := map[uint64]int64{}
	where := map[uint64]map[int32]struct{}{}
	for wi, w := range words {
		for k := 0; k+1 < len(w.syms); k++ {
			p := pairKey(w.syms[k], w.syms[k+1])
			counts[p] += w.count
			if where[p] == nil {
				where[p] = map[int32]struct{}{}
			}
			where[p][int32(wi)] = struct{}{}
		}
	}
	h := make(pairHeap, 0, len(counts))
	for p, c := range counts {
		h = append(h, pairCount{p, c})
	}
	heap.Init(&h)
	// bytesOf gives each symbol's bytes, to find merges that make a token
	// already made.
	bytesOf := map[int32]string{}
	for b := 0; b < 256; b++ {
		bytesOf[int32(b)] = string([]byte{byte(b)})
	}
	idOf := map[string]int32{}
	for i, s := range specials {
		// A merge that spells a special token's text (in characters that
		// stand for themselves) gets that token's id rather than a twin.
		if byteLevelString(s) == s {
			idOf[s] = int32(256 + i)
		}
	}
	var merges [][3]int32
	next := int32(firstID)
	for int(next) < vocabSize && h.Len() > 0 {
		top := heap.Pop(&h).(pairCount)
		cur := counts[top.pair]
		if cur != top.count {
			if cur > 0 {
				heap.Push(&h, pairCount{top.pair, cur})
			}
			continue
		}
		if cur < 1 {
			break
		}
		a, b := int32(top.pair>>32), int32(uint32(top.pair))
		joined := bytesOf[a] + bytesOf[b]
		id, ok := idOf[joined]
		if !ok {
			id = next
			next++
			idOf[joined] = id
			bytesOf[id] = joined
		}
		merges = append(merges, [3]int32{a, b, id})
		changed := map[uint64]bool{}
		for wi := range where[top.pair] {
			w := &words[wi]
			for k := 0; k+1 < len(w.syms); k++ {
				p := pairKey(w.syms[k], w.syms[k+1])
				counts[p] -= w.count
				changed[p] = true
			}
			out := w.syms[:0]
			for k := 0; k < len(w.syms); k++ {
				if k+1 < len(w.syms) && w.syms[k] == a && w.syms[k+1] == b {
					out = append(out, id)
					k++
					continue
				}
				out = append(out, w.syms[k])
			}
			w.syms = out
			for k := 0; k+1 < len(w.syms); k++ {
				p := pairKey(w.syms[k], w.syms[k+1])
				counts[p] += w.count
				changed[p] = true
				if where[p] == nil {
					where[p] = map[int32]struct{}{}
				}
				where[p][wi] = struct{}{}
			}
		}
		delete(where, top.pair)
		for p := range changed {
			if counts[p] <= 0 {
				delete(counts, p)
				continue
			}
			heap.Push(&h, pairCount{p, counts[p]})
		}
	}
	return merges
}

// specialRole guesses which role a special token plays from its name.
func specialRole(s string) string {
	l := strings.ToLower(s)
	switch {
	case l == "<s>" || strings.Contains(l, "bos") || strings.Contains(l, "begin_of_text") || strings.Contains(l, "startoftext"):
		return "bos"
	case l == "</s>" || strings.Contains(l, "eos") || strings.Contains(l, "end_of_text") || strings.Contains(l, "endoftext"):
		return "eos"
	case strings.Contains(l, "pad"):
		return "pad"
	}
	return ""
}

// buildByteLevel writes the tokenizer.json of a byte-level BPE tokenizer
// with the given merges (left id, right id, result id) and special tokens,
// and builds the tokenizer from it, so that what Save writes is exactly
// what was built.
func buildByteLevel(merges [][3]int32, specials []string) (*Tokenizer, error) {
	if err := checkSpecials(specials); err != nil {
		return nil, err
	}
	var vocab []string // id → byte-level token
	for b := 0; b < 256; b++ {
		vocab = append(vocab, string(byteToRune[b]))
	}
	vocab = append(vocab, specials...)
	for _, m := range merges {
		if int(m[2]) == len(vocab) {
			vocab = append(vocab, vocab[m[0]]+vocab[m[1]])
		} else if int(m[2]) > len(vocab) {
			return nil, fmt.Errorf("merge result id %d skips ids", m[2])
		}
	}
	var model bytes.Buffer
	model.WriteString(`{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,` +
		`"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{`)
	for id, tok := range vocab {
		if id > 0 {
			model.WriteByte(',')
		}
		fmt.Fprintf(&model, "%s:%d", jsonString(tok), id)
	}
	model.WriteString(`},"merges":[`)
	for i, m := range merges {
		if i > 0 {
			model.WriteByte(',')
		}
		// Byte-level tokens never hold a space, so the "a b" form, which
		// every version of the tokenizers library reads, is unambiguous.
		model.WriteString(jsonString(vocab[m[0]] + " " + vocab[m[1]]))
	}
	model.WriteString(`]}`)

	f := &tokenizerFile{
		Version:      "1.0",
		Truncation:   json.RawMessage("null"),
		Padding:      json.RawMessage("null"),
		Normalizer:   json.RawMessage("null"),
		PreTokenizer: json.RawMessage(`{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":` + jsonString(patternLlama3) + `},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`),
		Decoder:      json.RawMessage(`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`),
		Model:        json.RawMessage(model.Bytes()),
	}
	roles := map[string]string{}
	for i, s := range specials {
		f.AddedTokens = append(f.AddedTokens, AddedToken{ID: 256 + i, Content: s, Special: true})
		if r := specialRole(s); r != "" && roles[r] == "" {
			roles[r] = s
		}
	}
	if bos := roles["bos"]; bos != "" {
		b := jsonString(bos)
		f.PostProcessor = json.RawMessage(`{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":` + b +
			`,"type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":` + b +
			`,"type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":` + b +
			`,"type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{` + b + `:{"id":` + b +
			`,"ids":[` + fmt.Sprint(256+indexOf(specials, bos)) + `],"tokens":[` + b + `]}}}`)
	} else {
		f.PostProcessor = json.RawMessage(`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true}`)
	}
	t, err := build(f)
	if err != nil {
		return nil, fmt.Errorf("build byte-level tokenizer: %w", err)
	}
	t.config = map[string]any{"add_bos_token": roles["bos"] != "", "add_eos_token": false}
	if err := t.SetSpecialTokens(roles["bos"], roles["eos"], roles["pad"]); err != nil {
		return nil, err
	}
	return t, nil
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return -1
}
