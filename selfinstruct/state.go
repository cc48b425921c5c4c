package selfinstruct

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// The state file makes a run resumable. It is JSONL: a header line, then
// one line per finished batch holding the rows that batch kept and its
// rejection counts. A batch's line is appended and synced before the batch
// counts as done, so a restart replays exactly the batches that finished
// and never keeps a row twice; a line torn by a crash is cut off.

const stateVersion = 1

type stateHeader struct {
	Version    int    `json:"version"`
	SeedSHA256 string `json:"seed_sha256"` // of the seed tasks' instructions and instances
}

type stateRow struct {
	Instruction   string        `json:"instruction"`
	Input         string        `json:"input"`
	Output        string        `json:"output"`
	MostSimilar   []similarJSON `json:"most_similar_instructions"`
	AvgSimilarity float64       `json:"avg_similarity_score"`
	// Verified is set when the verifier confirmed the task's output.
	Verified bool `json:"verified,omitempty"`
}

type similarJSON struct {
	Text  string  `json:"text"`
	Score float64 `json:"score"`
}

type stateBatch struct {
	Batch    int            `json:"batch"`
	Rows     []stateRow     `json:"rows"`
	Rejected map[string]int `json:"rejected"`
	Requests int            `json:"requests"`
}

// maxStateLine bounds one line of a state file.
const maxStateLine = 64 << 20

// readState parses a state file. It returns the header (nil for an empty
// file), the batches, and the byte length of the well-formed prefix: a
// final line without its newline or that does not parse is a torn write
// and lies beyond it. A bad line before the last is an error.
func readState(r io.Reader, name string) (*stateHeader, []stateBatch, int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		hdr     *stateHeader
		batches []stateBatch
		good    int64
		lineNo  int
		pending error // a bad line, fatal only if another follows
	)
	for {
		line, err := readLine(br)
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, nil, 0, fmt.Errorf("%s line %d: %w", name, lineNo+1, err)
		}
		lineNo++
		if pending != nil {
			return nil, nil, 0, pending
		}
		complete := err == nil // ends with a newline
		var perr error
		body := bytes.TrimSpace(line)
		if hdr == nil {
			var h stateHeader
			perr = json.Unmarshal(body, &h)
			if perr == nil && h.Version != stateVersion {
				return nil, nil, 0, fmt.Errorf("%s line 1: state version %d, this program writes %d", name, h.Version, stateVersion)
			}
			if perr == nil && complete {
				hdr = &h
			}
		} else {
			var b stateBatch
			perr = json.Unmarshal(body, &b)
			if perr == nil && b.Batch != len(batches) {
				perr = fmt.Errorf("batch %d where %d was expected", b.Batch, len(batches))
			}
			if perr == nil && complete {
				batches = append(batches, b)
			}
		}
		if perr != nil {
			pending = fmt.Errorf("%s line %d: %w", name, lineNo, perr)
		} else if complete {
			good += int64(len(line))
		}
		if err == io.EOF {
			break
		}
	}
	return hdr, batches, good, nil
}

// readLine reads one line including its newline; at the end of input it
// returns what is left with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxStateLine {
			return nil, fmt.Errorf("longer than %d bytes", maxStateLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

// stateFile appends batches to an open state file.
type stateFile struct {
	f *os.File
}

// openState opens (or creates) the state file at path for a run with the
// given header, returning the batches already done. A torn final line is
// cut off; a header of other seed tasks is an error.
func openState(path string, want stateHeader) (*stateFile, []stateBatch, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	hdr, batches, good, err := readState(f, path)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	if hdr != nil && hdr.SeedSHA256 != want.SeedSHA256 {
		f.Close()
		return nil, nil, fmt.Errorf("state: %s was made from other seed tasks; delete it (and the output) to start over", path)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	s := &stateFile{f: f}
	if hdr == nil {
		if err := s.append(want); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return s, batches, nil
}

// append writes v as one line and syncs it to disk.
func (s *stateFile) append(v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if _, err := s.f.Write(append(raw, '\n')); err != nil {
		return fmt.Errorf("state %s: %w", s.f.Name(), err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("state %s: %w", s.f.Name(), err)
	}
	return nil
}

func (s *stateFile) Close() error { return s.f.Close() }
