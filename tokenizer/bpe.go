package tokenizer

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
)

// mergeVal is what a merge rule yields: its rank (priority, lower first)
// and the id of the merged token.
type mergeVal struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpeModel is byte-pair encoding (Sennrich et al. 2016, "Neural Machine
// Translation of Rare Words with Subword Units", §3.2) as Hugging Face
// tokenizers applies it to one word: start from characters (or bytes) and
// repeatedly merge the adjacent pair whose merge rule ranks first, the
// leftmost pair among equals, until no rule applies.
type bpeModel struct {
	vocab  map[string]int
	tokens []string // id → token, "" where the model has no token
	merges map[uint64]mergeVal

	unk          int // id of the unknown token, -1 when none
	contPrefix   string
	endSuffix    string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	dropout      float64 // kept for Save; encoding is deterministic

	fallback [256]int32 // ids of "<0xXX>", -1 when absent
	ascii    [128]int32 // ids of the one-character ASCII tokens, -1 when absent

	// Raw-byte input (a byte-level pipeline whose mapping is deferred to
	// the model): the ids of the 256 byte characters and the vocabulary
	// keyed by the bytes a token stands for.
	byteIDs  [256]int32
	rawVocab map[string]int

	// marker is a character (SentencePiece's "▁") that no token holds
	// except in a leading run; a word then splits exactly before each
	// marker that follows another character, since no merge can cross
	// there. Empty when the vocabulary does not allow it.
	marker string

	cache wordCache
}

// bpeConfig is the "model" object of a tokenizer.json of type BPE.
type bpeConfig struct {
	vocab        map[string]int
	merges       [][2]string
	unk          string
	contPrefix   string
	endSuffix    string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	dropout      float64
}

// newBPE builds the model and resolves merges to ids, failing (as the
// reference does) on a merge whose parts or result are not in the vocab.
// A pair listed twice keeps its last rank, as the reference's map does.
func newBPE(c bpeConfig) (*bpeModel, error) {
	vocab, merges, unk := c.vocab, c.merges, c.unk
	m := &bpeModel{
		vocab: vocab, unk: -1, merges: make(map[uint64]mergeVal, len(merges)),
		contPrefix: c.contPrefix, endSuffix: c.endSuffix, fuseUnk: c.fuseUnk,
		byteFallback: c.byteFallback, ignoreMerges: c.ignoreMerges, dropout: c.dropout,
	}
	maxID := -1
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab: token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	if maxID >= math.MaxInt32 {
		return nil, fmt.Errorf("vocab: id %d out of range", maxID)
	}
	m.tokens = make([]string, maxID+1)
	for tok, id := range vocab {
		m.tokens[id] = tok
	}
	for i, mg := range merges {
		a, okA := vocab[mg[0]]
		b, okB := vocab[mg[1]]
		if !okA || !okB {
			missing := mg[0]
			if okA {
				missing = mg[1]
			}
			return nil, fmt.Errorf("merges[%d] %q %q: token %q not in vocab", i, mg[0], mg[1], missing)
		}
		right := mg[1]
		if m.contPrefix != "" && len(right) >= len(m.contPrefix) && right[:len(m.contPrefix)] == m.contPrefix {
			right = right[len(m.contPrefix):]
		}
		id, ok := vocab[mg[0]+right]
		if !ok {
			return nil, fmt.Errorf("merges[%d] %q %q: merged token %q not in vocab", i, mg[0], mg[1], mg[0]+right)
		}
		m.merges[pairKey(int32(a), int32(b))] = mergeVal{int32(i), int32(id)}
	}
	if unk != "" {
		id, ok := vocab[unk]
		if !ok {
			return nil, fmt.Errorf("unk_token %q not in vocab", unk)
		}
		m.unk = id
	}
	if !c.ignoreMerges && c.contPrefix == "" && c.endSuffix == "" {
		m.marker = findMarker(vocab, "\u2581")
	}
	for b := 0; b < 128; b++ {
		m.ascii[b] = -1
		if id, ok := vocab[string(rune(b))]; ok {
			m.ascii[b] = int32(id)
		}
	}
	for b := 0; b < 256; b++ {
		m.fallback[b] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.fallback[b] = int32(id)
		}
		m.byteIDs[b] = -1
		if id, ok := vocab[string(byteToRune[b])]; ok {
			m.byteIDs[b] = int32(id)
		}
	}
	return m, nil
}

// enableRawInput prepares the model to read raw bytes for a byte-level
// pipeline.
func (m *bpeModel) enableRawInput() {
	m.rawVocab = make(map[string]int, len(m.vocab))
	var buf []byte
	for tok, id := range m.vocab {
		var ok bool
		buf, ok = unByteLevel(buf[:0], tok)
		if ok {
			m.rawVocab[string(buf)] = id
		}
	}
}

// bpeWord is the per-call working state of a merge.
type bpeWord struct {
	ids   []int32
	ranks []int32 // ranks[k]: rank of the pair (ids[k], ids[k+1]); noRank if none
	next  []int32 // linked list for long words
	prev  []int32
	heap  []mergeItem
}

const noRank = math.MaxInt32

var wordPool = sync.Pool{New: func() any { return new(bpeWord) }}

// findMarker returns marker when it is a token and every token holding it
// holds it only in a leading run, else "".
func findMarker(vocab map[string]int, marker string) string {
	if _, ok := vocab[marker]; !ok {
		return ""
	}
	for tok := range vocab {
		if strings.Contains(strings.TrimLeft(tok, marker), marker) {
			return ""
		}
	}
	return marker
}

// tokenize appends the ids of word w. With raw set, w is raw bytes of a
// byte-level pipeline; otherwise w is in the vocabulary's own alphabet.
// Long words of a vocabulary with a marker are cut before each marker
// that follows another character, and the pieces merged (and cached) one
// by one, which gives the same tokens as merging the whole word.
func (m *bpeModel) tokenize(dst []int, w string, raw bool) []int {
	if m.marker == "" || raw || len(w) < 64 {
		return m.tokenizeWord(dst, w, raw)
	}
	start := 0
	for i := 1; i < len(w); {
		k := strings.Index(w[i:], m.marker)
		if k < 0 {
			break
		}
		p := i + k
		if !strings.HasSuffix(w[:p], m.marker) {
			dst = m.tokenizeWord(dst, w[start:p], false)
			start = p
		}
		i = p + len(m.marker)
	}
	return m.tokenizeWord(dst, w[start:], false)
}

// tokenizeWord merges one word.
func (m *bpeModel) tokenizeWord(dst []int, w string, raw bool) []int {
	if w == "" {
		return dst
	}
	if m.ignoreMerges {
		v := m.vocab
		if raw {
			v = m.rawVocab
		}
		if id, ok := v[w]; ok {
			return append(dst, id)
		}
	}
	if ids, ok := m.cache.get(w); ok {
		for _, id := range ids {
			dst = append(dst, int(id))
		}
		return dst
	}
	wd := wordPool.Get().(*bpeWord)
	wd.ids = wd.ids[:0]
	if raw {
		for i := 0; i < len(w); i++ {
			id := m.byteIDs[w[i]]
			if id < 0 {
				// A byte with no character token: take the general path
				// over the mapped characters.
				wd.ids = m.initialSymbols(wd.ids[:0], byteLevelString(w))
				break
			}
			wd.ids = append(wd.ids, id)
		}
	} else {
		wd.ids = m.initialSymbols(wd.ids, w)
	}
	ids := m.mergeAll(wd)
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	if len(w) < maxCachedWord {
		m.cache.put(w, ids)
	}
	wordPool.Put(wd)
	return dst
}

// initialSymbols splits w into its characters' ids, with the continuing
// prefix and end suffix, byte fallback, and unknown-token handling of
// BPE::merge_word in Hugging Face tokenizers.
func (m *bpeModel) initialSymbols(ids []int32, w string) []int32 {
	unkPending := false
	plain := m.contPrefix == "" && m.endSuffix == ""
	for i := 0; i < len(w); {
		if c := w[i]; plain && c < 0x80 && m.ascii[c] >= 0 {
			// A known ASCII character: no map lookup.
			if unkPending {
				ids = append(ids, int32(m.unk))
				unkPending = false
			}
			ids = append(ids, m.ascii[c])
			i++
			continue
		}
		_, size := decodeRune(w, i)
		s := w[i : i+size]
		if i > 0 && m.contPrefix != "" {
			s = m.contPrefix + s
		}
		if i+size == len(w) && m.endSuffix != "" {
			s += m.endSuffix
		}
		i += size
		if id, ok := m.vocab[s]; ok {
			if unkPending {
				ids = append(ids, int32(m.unk))
				unkPending = false
			}
			ids = append(ids, int32(id))
			continue
		}
		if m.byteFallback {
			all := true
			for k := 0; k < len(s); k++ {
				if m.fallback[s[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				// The reference adds the byte tokens without flushing a
				// pending unknown token first; so do we.
				for k := 0; k < len(s); k++ {
					ids = append(ids, m.fallback[s[k]])
				}
				continue
			}
		}
		if m.unk >= 0 {
			if unkPending && !m.fuseUnk {
				ids = append(ids, int32(m.unk))
			}
			unkPending = true
		}
	}
	if unkPending {
		ids = append(ids, int32(m.unk))
	}
	return ids
}

// decodeRune returns the rune at s[i:] and its width (1 for an invalid byte).
func decodeRune(s string, i int) (rune, int) {
	if s[i] < 0x80 {
		return rune(s[i]), 1
	}
	r, w, _ := runeAt(s, i)
	return r, w
}

// smallWord is the length up to which a linear scan for the best pair
// beats a heap.
const smallWord = 48

// mergeAll applies the merge rules to wd.ids and returns the result (which
// aliases wd's buffers).
func (m *bpeModel) mergeAll(wd *bpeWord) []int32 {
	if len(wd.ids) < 2 {
		return wd.ids
	}
	if len(wd.ids) <= smallWord {
		return m.mergeSmall(wd)
	}
	return m.mergeHeap(wd)
}

func (m *bpeModel) pairRank(a, b int32) (int32, int32) {
	if v, ok := m.merges[pairKey(a, b)]; ok {
		return v.rank, v.id
	}
	return noRank, -1
}

// mergeSmall finds the best pair by a scan of the pair ranks, updating
// only the two pairs around each merge.
func (m *bpeModel) mergeSmall(wd *bpeWord) []int32 {
	ids := wd.ids
	ranks := wd.ranks[:0]
	for k := 0; k+1 < len(ids); k++ {
		r, _ := m.pairRank(ids[k], ids[k+1])
		ranks = append(ranks, r)
	}
	for {
		best, bestRank := -1, int32(noRank)
		for k, r := range ranks {
			if r < bestRank {
				best, bestRank = k, r
			}
		}
		if best < 0 {
			break
		}
		_, newID := m.pairRank(ids[best], ids[best+1])
		ids[best] = newID
		ids = append(ids[:best+1], ids[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		if best > 0 {
			ranks[best-1], _ = m.pairRank(ids[best-1], ids[best])
		}
		if best < len(ranks) {
			ranks[best], _ = m.pairRank(ids[best], ids[best+1])
		}
	}
	wd.ids, wd.ranks = ids, ranks
	return ids
}

// mergeItem is a candidate merge of the symbol at pos with its successor.
type mergeItem struct {
	rank, pos, id int32
}

func (a mergeItem) less(b mergeItem) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeHeap is Word::merge_all of Hugging Face tokenizers: a min-heap of
// candidate merges ordered by (rank, position) over a linked list of
// symbols; stale candidates are recognised by re-checking the pair.
func (m *bpeModel) mergeHeap(wd *bpeWord) []int32 {
	ids := wd.ids
	n := len(ids)
	next, prev := wd.next[:0], wd.prev[:0]
	for k := 0; k < n; k++ {
		next = append(next, int32(k+1))
		prev = append(prev, int32(k-1))
	}
	next[n-1] = -1
	h := wd.heap[:0]
	push := func(it mergeItem) {
		h = append(h, it)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !h[i].less(h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	pop := func() mergeItem {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		for i := 0; ; {
			l, r, s := 2*i+1, 2*i+2, i
			if l < len(h) && h[l].less(h[s]) {
				s = l
			}
			if r < len(h) && h[r].less(h[s]) {
				s = r
			}
			if s == i {
				break
			}
			h[i], h[s] = h[s], h[i]
			i = s
		}
		return top
	}
	for k := 0; k+1 < n; k++ {
		if r, id := m.pairRank(ids[k], ids[k+1]); r != noRank {
			push(mergeItem{r, int32(k), id})
		}
	}
	const dead = -1
	for len(h) > 0 {
		top := pop()
		p := top.pos
		if ids[p] == dead || next[p] < 0 {
			continue
		}
		q := next[p]
		if _, id := m.pairRank(ids[p], ids[q]); id != top.id {
			continue // stale: the pair at p has changed
		}
		ids[p] = top.id
		ids[q] = dead
		next[p] = next[q]
		if next[q] >= 0 {
			prev[next[q]] = p
		}
		if prev[p] >= 0 {
			if r, id := m.pairRank(ids[prev[p]], ids[p]); r != noRank {
				push(mergeItem{r, prev[p], id})
			}
		}
		if next[p] >= 0 {
			if r, id := m.pairRank(ids[p], ids[next[p]]); r != noRank {
				push(mergeItem{r, p, id})
			}
		}
	}
	out := ids[:0]
	for k := 0; k < n; k++ {
		if ids[k] != dead {
			out = append(out, ids[k])
		}
	}
	wd.next, wd.prev, wd.heap, wd.ids = next, prev, h, out
	return out
}

// maxCachedWord and maxCacheEntries bound the word cache (the reference
// caches words shorter than 256 bytes).
const (
	maxCachedWord   = 256
	maxCacheEntries = 1 << 17
	publishEvery    = 1 << 10
)

// wordCache remembers the ids of words already merged. It is safe for
// concurrent use: lookups read an immutable snapshot through an atomic
// pointer (no lock, no shared write), new words wait in a locked map
// until a batch of them is published in a fresh snapshot. It stops
// growing when full.
type wordCache struct {
	snap    atomic.Pointer[map[string][]int32]
	mu      sync.Mutex
	pending map[string][]int32
	size    int
}

func (c *wordCache) get(w string) ([]int32, bool) {
	if m := c.snap.Load(); m != nil {
		if ids, ok := (*m)[w]; ok {
			return ids, true
		}
	}
	c.mu.Lock()
	ids, ok := c.pending[w]
	c.mu.Unlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.size >= maxCacheEntries {
		return
	}
	if c.pending == nil {
		c.pending = make(map[string][]int32)
	}
	if _, ok := c.pending[w]; ok {
		return
	}
	c.pending[w] = append([]int32(nil), ids...)
	c.size++
	old := c.snap.Load()
	// Publishing copies the snapshot; waiting for a batch of a quarter of
	// its size keeps the total copying linear in the number of words.
	if len(c.pending) < publishEvery || (old != nil && 4*len(c.pending) < len(*old)) {
		return
	}
	n := len(c.pending)
	if old != nil {
		n += len(*old)
	}
	next := make(map[string][]int32, n)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	for k, v := range c.pending {
		next[k] = v
	}
	c.snap.Store(&next)
	c.pending = nil
}

// reset empties the cache.
func (c *wordCache) reset() {
	c.mu.Lock()
	c.snap.Store(nil)
	c.pending = nil
	c.size = 0
	c.mu.Unlock()
}
