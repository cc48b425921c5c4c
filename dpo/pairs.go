package dpo

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/tokenizer"
)

// pair is one tokenized preference pair, fitted to the maximum length.
type pair struct {
	file, row        int          // source dataset and row
	chosen, rejected data.Example // prompt + completion, Mask on the completion
	// refChosen and refRejected are the reference's summed completion
	// log-probabilities when stored in the dataset (NaN when absent).
	refChosen, refRejected float64
}

// maxLen is the longer of the pair's two rows.
func (p *pair) maxLen() int { return max(len(p.chosen.IDs), len(p.rejected.IDs)) }

// hasRef reports whether the pair carries finite stored reference values.
func (p *pair) hasRef() bool {
	return !math.IsNaN(p.refChosen) && !math.IsInf(p.refChosen, 0) &&
		!math.IsNaN(p.refRejected) && !math.IsInf(p.refRejected, 0)
}

// encoder tokenizes preference rows as the SFT stage tokenizes its
// examples, so that the reference (the SFT model) scores completions
// tokenized as it was trained on them.
//
// A plain row is its prompt and completion encoded as one text after BOS,
// with EOS appended, the completion starting at the first token the
// prompt's own encoding does not share (tokenizer.EncodePromptCompletion,
// as Stanford Alpaca's train.py masks; TRL's DPO trainer encodes the two
// apart instead, which puts a token boundary where the pretraining and SFT
// texts have none). A conversational row is the conversation rendered with
// the chat template (tokenizer.EncodeChat), the completion being the
// answer's turn after the prompt rendered with the generation prompt, its
// end-of-turn token included; assistant turns inside the prompt are not
// in the loss.
type encoder struct {
	tok      *tokenizer.Tokenizer
	template string // chat template of conversational rows ("" chooses, see chatTemplate)
}

// encode returns the chosen and rejected rows of one preference pair.
func (e *encoder) encode(p data.Preference) (chosen, rejected data.Example, err error) {
	if !p.Conversational() {
		c := e.tok.EncodePromptCompletion(p.Prompt, p.Chosen, true, true)
		r := e.tok.EncodePromptCompletion(p.Prompt, p.Rejected, true, true)
		return data.Example{IDs: c.IDs, Mask: c.Mask}, data.Example{IDs: r.IDs, Mask: r.Mask}, nil
	}
	tmpl, err := e.chatTemplate()
	if err != nil {
		return chosen, rejected, err
	}
	if len(p.PromptMessages) == 0 {
		return chosen, rejected, fmt.Errorf("conversational row without prompt messages")
	}
	prompt := messages(p.PromptMessages)
	ptext, err := e.tok.RenderChat(tmpl, prompt, true)
	if err != nil {
		return chosen, rejected, err
	}
	pids := e.tok.Encode(ptext, false)
	side := func(answer []data.Message) (data.Example, error) {
		all := append(append([]tokenizer.Message(nil), prompt...), messages(answer)...)
		full, err := e.tok.RenderChat(tmpl, all, false)
		if err != nil {
			return data.Example{}, err
		}
		if !strings.HasPrefix(full, ptext) {
			return data.Example{}, fmt.Errorf("the chat template does not render the conversation as its prompt (with the generation prompt) followed by the answer")
		}
		enc, err := e.tok.EncodeChat(tmpl, all)
		if err != nil {
			return data.Example{}, err
		}
		// Tokens shared with the prompt's own encoding belong to the
		// prompt (after a BOS that EncodeChat adds outside the text).
		off := 0
		if bos := e.tok.BOS(); bos >= 0 && len(enc.IDs) > 0 && enc.IDs[0] == bos && (len(pids) == 0 || pids[0] != bos) {
			off = 1
		}
		b := 0
		for b < len(pids) && off+b < len(enc.IDs) && pids[b] == enc.IDs[off+b] {
			b++
		}
		for i := range off + b {
			enc.Mask[i] = false
		}
		if !slices.Contains(enc.Mask, true) {
			return data.Example{}, fmt.Errorf("the answer has no assistant turn to learn from")
		}
		return data.Example{IDs: enc.IDs, Mask: enc.Mask}, nil
	}
	if chosen, err = side(p.ChosenMessages); err != nil {
		return chosen, rejected, fmt.Errorf("chosen: %w", err)
	}
	if rejected, err = side(p.RejectedMessages); err != nil {
		return chosen, rejected, fmt.Errorf("rejected: %w", err)
	}
	return chosen, rejected, nil
}

// chatTemplate is the template for conversational rows: the one named, else
// (auto) the one SFT renders with by default: the tokenizer's own
// chat_template, or Alpaca's prompt when it has none.
func (e *encoder) chatTemplate() (string, error) {
	if e.template != "" && e.template != finetune.TemplateAuto {
		return e.template, nil
	}
	return finetune.ResolveTemplate(e.tok, finetune.TemplateAuto), nil
}

func messages(ms []data.Message) []tokenizer.Message {
	out := make([]tokenizer.Message, len(ms))
	for i, m := range ms {
		out[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	return out
}

// encodePairs tokenizes and fits every row; rows whose chosen or rejected
// side is dropped by the fit (see data.BatchOptions.Fit) are left out.
func encodePairs(file int, rows []data.Preference, enc *encoder, fit data.BatchOptions, rep *data.TruncationReport) ([]pair, error) {
	out := make([]pair, 0, len(rows))
	for i, p := range rows {
		c, r, err := enc.encode(p)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i+1, err)
		}
		c.Row, r.Row = i, i
		fc, okc := fit.Fit(c, rep)
		fr, okr := fit.Fit(r, rep)
		if !okc || !okr {
			continue
		}
		q := pair{file: file, row: i, chosen: fc, rejected: fr, refChosen: math.NaN(), refRejected: math.NaN()}
		if p.RefChosenLogp != nil && p.RefRejectedLogp != nil {
			q.refChosen, q.refRejected = *p.RefChosenLogp, *p.RefRejectedLogp
		}
		out = append(out, q)
	}
	return out, nil
}

// collate lays out P pairs as one batch of 2P rows of T tokens: rows
// 0…P−1 the chosen completions, rows P…2P−1 the rejected ones.
func collate(ps []*pair, T, pad int) data.Batch {
	ex := make([]data.Example, 2*len(ps))
	for i, p := range ps {
		ex[i], ex[len(ps)+i] = p.chosen, p.rejected
	}
	return data.Collate(ex, T, pad)
}

// bucket returns the smallest allowed length that holds n tokens.
func bucket(buckets []int, n int) int {
	for _, b := range buckets {
		if b >= n {
			return b
		}
	}
	return buckets[len(buckets)-1]
}
