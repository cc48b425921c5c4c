package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// EncodeJSONL reads JSON lines {"text": ...} from r and writes one line
// {"ids": [...]} per input line, in order, to w. Blank lines are skipped;
// a malformed line is an error naming its line number.
func EncodeJSONL(t *Tokenizer, r io.Reader, w io.Writer, addSpecial bool) error {
	return eachJSONLine(r, w, func(line []byte) (any, error) {
		var in struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &in); err != nil {
			return nil, err
		}
		if in.Text == nil {
			return nil, errors.New(`want {"text": "..."}`)
		}
		ids := t.Encode(*in.Text, addSpecial)
		if ids == nil {
			ids = []int{}
		}
		return struct {
			IDs []int `json:"ids"`
		}{ids}, nil
	})
}

// DecodeJSONL reads JSON lines {"ids": [...]} from r and writes one line
// {"text": ...} per input line, in order, to w.
func DecodeJSONL(t *Tokenizer, r io.Reader, w io.Writer, skipSpecial bool) error {
	return eachJSONLine(r, w, func(line []byte) (any, error) {
		var in struct {
			IDs *[]int `json:"ids"`
		}
		if err := json.Unmarshal(line, &in); err != nil {
			return nil, err
		}
		if in.IDs == nil {
			return nil, errors.New(`want {"ids": [...]}`)
		}
		for i, id := range *in.IDs {
			if id < 0 || id >= t.VocabSize() {
				return nil, fmt.Errorf("ids[%d] = %d is outside the vocabulary (0..%d)", i, id, t.VocabSize()-1)
			}
		}
		return struct {
			Text string `json:"text"`
		}{t.Decode(*in.IDs, skipSpecial)}, nil
	})
}

func eachJSONLine(r io.Reader, w io.Writer, f func([]byte) (any, error)) error {
	br := bufio.NewReaderSize(r, 1<<20)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			out, ferr := f(line)
			if ferr != nil {
				return fmt.Errorf("line %d: %w", n, ferr)
			}
			if eerr := enc.Encode(out); eerr != nil {
				return fmt.Errorf("line %d: %w", n, eerr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return bw.Flush()
}
