package selfinstruct

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// SeedTask is one human-written task in Alpaca's seed format
// (seed_tasks.jsonl, one JSON object per line).
type SeedTask struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Instruction      string     `json:"instruction"`
	Instances        []Instance `json:"instances"`
	IsClassification bool       `json:"is_classification"`
}

// Instance is one input/output example of a seed task.
type Instance struct {
	Input  string `json:"input"`
	Output string `json:"output"`
}

// Task is the seed as a prompt example: its first instance.
func (s SeedTask) Task() GeneratedTask {
	return GeneratedTask{Instruction: s.Instruction, Input: s.Instances[0].Input, Output: s.Instances[0].Output}
}

//go:embed seed_tasks.jsonl
var defaultSeeds []byte

//go:embed prompt.txt
var defaultHeader string

// DefaultPromptHeader is the request text placed before the example tasks;
// "{num_tasks}" stands for the number of tasks asked for.
func DefaultPromptHeader() string { return defaultHeader }

// DefaultSeedTasks returns the embedded seed set: small tasks whose answers
// can be checked exactly (arithmetic, sorting, counting, string edits,
// comparisons), each recognised by KnownTasks.
func DefaultSeedTasks() []SeedTask {
	tasks, err := ParseSeedTasks(bytes.NewReader(defaultSeeds), "embedded seed_tasks.jsonl")
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return tasks
}

// LoadSeedTasks reads seed tasks from a JSONL file.
func LoadSeedTasks(path string) ([]SeedTask, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seed tasks: %w", err)
	}
	defer f.Close()
	return ParseSeedTasks(f, path)
}

// maxSeedLine bounds one line of a seed file.
const maxSeedLine = 1 << 20

// ParseSeedTasks reads seed tasks in Alpaca's JSONL format; name labels
// errors, which give the line. Every task needs an instruction and at least
// one instance; ids must be unique; blank lines are skipped.
func ParseSeedTasks(r io.Reader, name string) ([]SeedTask, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxSeedLine)
	var tasks []SeedTask
	ids := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var t SeedTask
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%s line %d: more than one JSON value", name, line)
		}
		switch {
		case strings.TrimSpace(t.Instruction) == "":
			return nil, fmt.Errorf("%s line %d: field \"instruction\" is empty", name, line)
		case len(t.Instances) == 0:
			return nil, fmt.Errorf("%s line %d: field \"instances\" is empty", name, line)
		}
		if t.ID != "" {
			if prev, dup := ids[t.ID]; dup {
				return nil, fmt.Errorf("%s line %d: id %q already used on line %d", name, line, t.ID, prev)
			}
			ids[t.ID] = line
		}
		tasks = append(tasks, t)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s line %d: longer than %d bytes", name, line+1, maxSeedLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(tasks) == 0 {
		return nil, fmt.Errorf("%s: no seed tasks", name)
	}
	return tasks, nil
}
