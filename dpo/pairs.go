package dpo

import (
	"fmt"
	"math"
	"strings"

	"github.com/gotune/gotune/data"
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

// encoder tokenizes preference rows as TRL's DPOTrainer.tokenize_row does
// for decoder-only models: prompt and completion are encoded separately, so
// the prompt tokens of chosen and rejected are identical whatever the
// completions, and EOS ends each completion. A plain prompt is encoded with
// the tokenizer's special tokens (BOS), as Stanford Alpaca's train.py
// encodes its source; a conversational prompt is rendered with the chat
// template, which writes its own special tokens.
type encoder struct {
	tok  *tokenizer.Tokenizer
	chat *chatTemplate // nil until a conversational row needs it
}

// encode returns the chosen and rejected rows of one preference pair.
func (e *encoder) encode(p data.Preference) (chosen, rejected data.Example, err error) {
	var prompt []int
	var c, r string
	if p.Conversational() {
		if e.chat == nil {
			if e.chat, err = newChatTemplate(e.tok); err != nil {
				return chosen, rejected, err
			}
		}
		var ptext string
		if ptext, c, r, err = e.chat.split(p.PromptMessages, p.ChosenMessages, p.RejectedMessages); err != nil {
			return chosen, rejected, err
		}
		prompt = e.tok.Encode(ptext, false)
	} else {
		prompt = e.tok.Encode(p.Prompt, true)
		c, r = p.Chosen, p.Rejected
	}
	return e.join(prompt, c), e.join(prompt, r), nil
}

// join appends a completion (and EOS) to the prompt tokens, masking the
// completion.
func (e *encoder) join(prompt []int, completion string) data.Example {
	comp := e.tok.Encode(completion, false)
	if eos := e.tok.EOS(); eos >= 0 {
		comp = append(comp, eos)
	}
	ids := make([]int, 0, len(prompt)+len(comp))
	ids = append(append(ids, prompt...), comp...)
	mask := make([]bool, len(ids))
	for i := len(prompt); i < len(ids); i++ {
		mask[i] = true
	}
	return data.Example{IDs: ids, Mask: mask}
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

// split divides rendered conversations into prompt and completion texts.
func (c *chatTemplate) split(prompt, chosen, rejected []data.Message) (ptext, ctext, rtext string, err error) {
	if len(prompt) == 0 {
		return "", "", "", fmt.Errorf("conversational row without prompt messages")
	}
	if ptext, err = c.render(prompt, true); err != nil {
		return "", "", "", err
	}
	completion := func(answer []data.Message) (string, error) {
		full, err := c.render(append(append([]data.Message(nil), prompt...), answer...), false)
		if err != nil {
			return "", err
		}
		rest, ok := strings.CutPrefix(full, ptext)
		if !ok {
			return "", fmt.Errorf("the chat template does not render the conversation as its prompt followed by the answer")
		}
		return rest, nil
	}
	if ctext, err = completion(chosen); err != nil {
		return "", "", "", err
	}
	if rtext, err = completion(rejected); err != nil {
		return "", "", "", err
	}
	return ptext, ctext, rtext, nil
}
