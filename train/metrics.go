package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/schollz/progressbar/v3"
)

// metricsLog appends one JSON object per line to metrics.jsonl.
type metricsLog struct {
	path string
	f    *os.File
}

func openMetricsLog(path string) (*metricsLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: metrics: %w", err)
	}
	return &metricsLog{path: path, f: f}, nil
}

// keyOrder puts the common keys first; the rest follow alphabetically.
var keyOrder = []string{KeyStep, KeyEpoch, KeyLoss, KeyLR, KeyGradNorm, KeyTokensPerSec, KeyTokens}

// encodeRecord writes rec as one JSON object with a stable key order;
// non-finite values become null.
func encodeRecord(rec map[string]float64) []byte {
	var keys []string
	rank := map[string]int{}
	for i, k := range keyOrder {
		rank[k] = i
	}
	for k := range rec {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, iok := rank[keys[i]]
		rj, jok := rank[keys[j]]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return keys[i] < keys[j]
	})
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		v := rec[k]
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			b.WriteString("null")
		case k == KeyStep:
			b.WriteString(strconv.FormatInt(int64(v), 10))
		default:
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// Write appends one record as a single write, so a crash leaves at most a
// partial last line (which truncateMetrics drops).
func (m *metricsLog) Write(rec map[string]float64) error {
	if _, err := m.f.Write(encodeRecord(rec)); err != nil {
		return fmt.Errorf("train: metrics %s: %w", m.path, err)
	}
	return nil
}

func (m *metricsLog) Close() error { return m.f.Close() }

// truncateMetrics keeps the lines of a metrics log whose step is at most
// step, so that a resumed run does not log an update twice. An unreadable
// last line (cut off by a crash) is dropped; an unreadable line elsewhere
// is an error.
func truncateMetrics(path string, step int) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	var keep bytes.Buffer
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec struct {
			Step *float64 `json:"step"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec.Step == nil || !bytes.HasSuffix(line, []byte("\n")) {
			if i == len(lines)-1 {
				break
			}
			return fmt.Errorf("train: metrics %s: line %d is not a record with a step", path, i+1)
		}
		if int(*rec.Step) <= step {
			keep.Write(line)
		}
	}
	return atomicfile.WriteBytes(path, keep.Bytes())
}

// ReadMetrics parses a metrics.jsonl file into records (null values are
// left out).
func ReadMetrics(path string) ([]map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec map[string]*float64
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("metrics %s: line %d: %w", path, n, err)
		}
		m := map[string]float64{}
		for k, v := range rec {
			if v != nil {
				m[k] = *v
			}
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics %s: %w", path, err)
	}
	return out, nil
}

// progress draws a progress bar with the step, loss, learning rate,
// throughput and ETA, when the destination is a terminal.
type progress struct {
	bar   *progressbar.ProgressBar
	total int
	first int
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgress(c Config, done int) *progress {
	p := &progress{total: c.Steps, first: done}
	if c.Quiet {
		return p
	}
	out := c.Progress
	if out == nil {
		out = os.Stderr
	}
	if f, ok := out.(*os.File); !ok || !isTerminal(f) {
		return p
	}
	// The bar counts the updates of this run, so its ETA is not skewed by
	// the updates a resumed run inherited; the description shows the step.
	p.bar = progressbar.NewOptions(c.Steps-done,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetWidth(24),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(out) }),
	)
	return p
}

func (p *progress) update(step int, loss, lr, tokPerSec float64) {
	if p.bar == nil {
		return
	}
	p.bar.Describe(fmt.Sprintf("step %d/%d  loss %.4f  lr %.2e  %.0f tok/s", step, p.total, loss, lr, tokPerSec))
	p.bar.Set(step - p.first)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Exit()
	}
}
