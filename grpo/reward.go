package grpo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gotune/gotune/data/verify"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
)

// Names of the reward functions (the values of reward-funcs).
const (
	// RewardWorld is 1 when the completion is the exact answer of the row's
	// task of the built-in world, recognised from its instruction and input
	// (world.Solve, world.Check), else 0. A row that is no task of the
	// world is an error.
	RewardWorld = "world"
	// RewardExact is 1 when the completion equals the row's output column
	// up to white space (verify.ExactMatch), else 0.
	RewardExact = "exact"
	// RewardFormat is 1 when the completion ended with EOS within the
	// length limit and is one non-empty line, as the world's answers are,
	// else 0.
	RewardFormat = "format"
	// RewardCommand runs reward-command once per generation batch: one
	// JSON object per completion on its standard input (CommandInput), one
	// number per line on its standard output, in the same order.
	RewardCommand = "command"
	// RewardHTTP posts the generation batch to reward-url as a JSON array
	// of CommandInput objects and reads a JSON array of as many numbers
	// back, in the same order.
	RewardHTTP = "http"
	// RewardModel is a reward model trained by gotune reward, read at the
	// completion's last token.
	RewardModel = "model"
)

// RewardNames are the accepted reward functions.
var RewardNames = []string{RewardWorld, RewardExact, RewardFormat, RewardCommand, RewardHTTP, RewardModel}

// What to do with a reward that fails (a command that crashes, times out,
// prints something that is not a number): the values of reward-errors.
const (
	ErrorsStop = "stop" // end the run with an error naming the prompt and completion
	ErrorsZero = "zero" // score the completion 0 and count it in rewards/<name>/errors
)

// Sample is one completion as the reward functions see it.
type Sample struct {
	Row         int    // the prompt's row in its dataset (0-based)
	Instruction string // the row's instruction
	Input       string // the row's input
	Answer      string // the row's output column: the reference answer
	Prompt      string // the prompt text the policy saw
	Completion  string // the decoded completion, without EOS
	Ended       bool   // ended with EOS within max-completion-length
	IDs         []int  // prompt and completion token ids, EOS included when Ended
}

// describe names a sample in errors.
func (s Sample) describe() string {
	return fmt.Sprintf("row %d (prompt %q, completion %q)", s.Row+1, clip(s.Prompt, 120), clip(s.Completion, 120))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// rewardFunc scores samples. A failed sample gets NaN and the error names
// it; an error with no scores at all failed every sample.
type rewardFunc struct {
	name  string
	score func(ctx context.Context, s []Sample) ([]float64, error)
}

// rowFuncs wraps a function of one sample.
func rowFunc(name string, f func(s Sample) (float64, error)) rewardFunc {
	return rewardFunc{name, func(_ context.Context, ss []Sample) ([]float64, error) {
		out := make([]float64, len(ss))
		var first error
		for i, s := range ss {
			v, err := f(s)
			if err != nil {
				out[i] = math.NaN()
				if first == nil {
					first = fmt.Errorf("%s: %w", s.describe(), err)
				}
				continue
			}
			out[i] = v
		}
		return out, first
	}}
}

func indicator(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// worldReward is RewardWorld.
func worldReward(s Sample) (float64, error) {
	t, ok := world.Solve(s.Instruction, s.Input)
	if !ok {
		return 0, errors.New("not a task of the built-in world: its reward function cannot check it")
	}
	return indicator(world.Check(t, s.Completion)), nil
}

// exactReward is RewardExact.
func exactReward(s Sample) (float64, error) {
	if s.Answer == "" {
		return 0, errors.New("the output column is empty: nothing to match")
	}
	return indicator(verify.ExactMatch(s.Completion, s.Answer)), nil
}

// formatReward is RewardFormat.
func formatReward(s Sample) (float64, error) {
	c := strings.TrimSpace(s.Completion)
	return indicator(s.Ended && c != "" && !strings.Contains(c, "\n")), nil
}

// CommandInput is the JSON object a reward command reads for each
// completion, one per line, and a reward endpoint for each completion, in
// an array.
type CommandInput struct {
	Row         int    `json:"row"` // 1-based row of the prompts' dataset
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Answer      string `json:"answer"`
	Prompt      string `json:"prompt"`
	Completion  string `json:"completion"`
}

// commandReward runs argv (a command line split on white space) with the
// samples on its standard input and reads one score per line.
func commandReward(argv []string, timeout time.Duration) rewardFunc {
	return rewardFunc{RewardCommand, func(ctx context.Context, ss []Sample) ([]float64, error) {
		var in bytes.Buffer
		enc := json.NewEncoder(&in)
		for _, s := range ss {
			if err := enc.Encode(CommandInput{Row: s.Row + 1, Instruction: s.Instruction, Input: s.Input,
				Answer: s.Answer, Prompt: s.Prompt, Completion: s.Completion}); err != nil {
				return nil, err
			}
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdin = &in
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			return nil, fmt.Errorf("reward command %q timed out after %v on %d completions, the first %s", strings.Join(argv, " "), timeout, len(ss), ss[0].describe())
		case err != nil:
			return nil, fmt.Errorf("reward command %q on %d completions, the first %s: %w; stderr: %s", strings.Join(argv, " "), len(ss), ss[0].describe(), err, clip(strings.TrimSpace(stderr.String()), 400))
		}
		scores := make([]float64, len(ss))
		var first error
		sc := bufio.NewScanner(&out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		n := 0
		for sc.Scan() {
			if n == len(ss) {
				return nil, fmt.Errorf("reward command %q printed more than %d scores, one per completion", strings.Join(argv, " "), len(ss))
			}
			line := strings.TrimSpace(sc.Text())
			v, err := strconv.ParseFloat(line, 64)
			if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
				err = errors.New("not finite")
			}
			if err != nil {
				v = math.NaN()
				if first == nil {
					first = fmt.Errorf("reward command %q, output line %d %q for %s: not a finite number", strings.Join(argv, " "), n+1, clip(line, 40), ss[n].describe())
				}
			}
			scores[n] = v
			n++
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reward command %q: reading its output: %w", strings.Join(argv, " "), err)
		}
		if n < len(ss) {
			for i := n; i < len(ss); i++ {
				scores[i] = math.NaN()
			}
			if first == nil {
				first = fmt.Errorf("reward command %q printed %d scores for %d completions; none for %s", strings.Join(argv, " "), n, len(ss), ss[n].describe())
			}
		}
		return scores, first
	}}
}

// httpReward posts the samples to url and reads one score per sample.
func httpReward(url string, timeout time.Duration) rewardFunc {
	return rewardFunc{RewardHTTP, func(ctx context.Context, ss []Sample) ([]float64, error) {
		in := make([]CommandInput, len(ss))
		for i, s := range ss {
			in[i] = CommandInput{Row: s.Row + 1, Instruction: s.Instruction, Input: s.Input,
				Answer: s.Answer, Prompt: s.Prompt, Completion: s.Completion}
		}
		body, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("reward endpoint %s: %w", url, err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("reward endpoint %s on %d completions, the first %s: %w", url, len(ss), ss[0].describe(), err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("reward endpoint %s: reading its answer: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("reward endpoint %s answered %s on %d completions, the first %s: %s", url, resp.Status, len(ss), ss[0].describe(), clip(strings.TrimSpace(string(raw)), 400))
		}
		var out []*float64 // null marks a completion the endpoint could not score
		if err := json.Unmarshal(raw, &out); err != nil {
			return nil, fmt.Errorf("reward endpoint %s: its answer is not a JSON array of numbers: %w", url, err)
		}
		if len(out) != len(ss) {
			return nil, fmt.Errorf("reward endpoint %s answered %d scores for %d completions, the first %s", url, len(out), len(ss), ss[0].describe())
		}
		scores := make([]float64, len(ss))
		var first error
		for i, v := range out {
			if v == nil {
				scores[i] = math.NaN()
				if first == nil {
					first = fmt.Errorf("reward endpoint %s gave no score for %s", url, ss[i].describe())
				}
				continue
			}
			scores[i] = *v
		}
		return scores, first
	}}
}

// modelReward scores with a reward model's Scorer.
func modelReward(s *finetune.Scorer) rewardFunc {
	return rewardFunc{RewardModel, func(ctx context.Context, ss []Sample) ([]float64, error) {
		seqs := make([][]int, len(ss))
		for i, x := range ss {
			seqs[i] = x.IDs
		}
		return s.Score(ctx, seqs)
	}}
}

// scoreAll runs every reward function on the samples. Under ErrorsStop the
// first failure is returned; under ErrorsZero failed samples score 0 and
// errs counts them per function.
func scoreAll(ctx context.Context, funcs []rewardFunc, ss []Sample, onError string) (scores [][]float64, errs []int, err error) {
	scores, errs = make([][]float64, len(funcs)), make([]int, len(funcs))
	for k, f := range funcs {
		s, ferr := f.score(ctx, ss)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if ferr != nil && onError != ErrorsZero {
			return nil, nil, fmt.Errorf("reward function %s: %w", f.name, ferr)
		}
		if s == nil {
			s = make([]float64, len(ss))
			errs[k] = len(ss)
		}
		for i, v := range s {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				if onError != ErrorsZero {
					return nil, nil, fmt.Errorf("reward function %s: %s: score %v", f.name, ss[i].describe(), v)
				}
				s[i] = 0
				errs[k]++
			}
		}
		scores[k] = s
	}
	return scores, errs, nil
}
