// Package selfinstruct generates instruction-tuning data from a handful of
// seed tasks by Stanford Alpaca's variant of Self-Instruct (Wang et al.
// 2023; Taori et al. 2023): each prompt shows three seed tasks drawn at
// random and asks a teacher model for a numbered list of new ones; the
// reply is parsed into tasks, filtered by Alpaca's heuristics and an
// optional verifier, and a task is kept only if its instruction's ROUGE-L
// F-measure against every instruction kept so far (seeds included) is at
// most 0.7. The result is an Arrow generated-instructions dataset with each
// row's most similar instructions and mean similarity. Runs are resumable:
// a state file records every finished batch. Under mpirun the ranks share
// each batch's prompts (see sharedTeacher).
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package selfinstruct

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/train"
)

// Report summarises a run.
type Report struct {
	Kept     int            // rows in the output
	Resumed  int            // of which came from an earlier run
	Batches  int            // batches done, earlier runs included
	Requests int            // prompts sent, earlier runs included
	Rejected map[string]int // by reason, earlier runs included
	// Verified counts the kept tasks whose output the verifier confirmed;
	// Unverified those it could not check (kept without RequireVerified).
	// Both are 0 without a verifier.
	Verified, Unverified int
	// SeedRougeL is the distribution, over the kept tasks, of each task's
	// highest ROUGE-L F against the seed instructions: how far the new
	// tasks are from what the teacher was shown.
	SeedRougeL Distribution
}

// String is a one-line summary.
func (r Report) String() string {
	s := fmt.Sprintf("kept %d (%d resumed) after %d batches, %d requests; rejected %s", r.Kept, r.Resumed, r.Batches, r.Requests, formatCounts(r.Rejected))
	if r.Verified+r.Unverified > 0 {
		s += fmt.Sprintf("; verified %d of %d kept", r.Verified, r.Kept)
	}
	if r.Kept > 0 {
		s += "; ROUGE-L against the seeds " + r.SeedRougeL.String()
	}
	return s
}

// Distribution summarises a sample of scores.
type Distribution struct {
	N                                int
	Mean, Min, P10, Median, P90, Max float64
}

// Summarize computes the distribution of xs (nearest-rank percentiles).
func Summarize(xs []float64) Distribution {
	if len(xs) == 0 {
		return Distribution{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	at := func(p float64) float64 { return data.NearestRank(s, p) }
	return Distribution{N: len(s), Mean: sum / float64(len(s)), Min: s[0], P10: at(10), Median: at(50), P90: at(90), Max: s[len(s)-1]}
}

// String is "median m (p10 a, p90 b, max c)".
func (d Distribution) String() string {
	return fmt.Sprintf("median %.2f (p10 %.2f, p90 %.2f, max %.2f)", d.Median, d.P10, d.P90, d.Max)
}

// seedRougeL is each row's highest ROUGE-L F against the seeds.
func seedRougeL(seeds []SeedTask, rows []stateRow) []float64 {
	var p pool
	for _, s := range seeds {
		p.add(s.Instruction)
	}
	out := make([]float64, len(rows))
	for i, r := range rows {
		out[i] = slices.Max(append(p.scores(Tokenize(r.Instruction)), 0))
	}
	return out
}

// finish fills the report's totals from the kept rows.
func (r *Report) finish(seeds []SeedTask, rows []stateRow, batches int, verifier bool) {
	r.Kept, r.Batches = len(rows), batches
	r.Verified, r.Unverified = 0, 0
	if verifier {
		for _, row := range rows {
			if row.Verified {
				r.Verified++
			} else {
				r.Unverified++
			}
		}
	}
	r.SeedRougeL = Summarize(seedRougeL(seeds, rows))
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// seedHash identifies a seed set in the state file.
func seedHash(seeds []SeedTask) string {
	h := sha256.New()
	for _, s := range seeds {
		fmt.Fprintf(h, "%q\x00", s.Instruction)
		for _, in := range s.Instances {
			fmt.Fprintf(h, "%q\x00%q\x00", in.Input, in.Output)
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// pool is every instruction kept so far (seeds first) with its tokens.
type pool struct {
	texts  []string
	tokens [][]string
}

func (p *pool) add(text string) {
	p.texts = append(p.texts, text)
	p.tokens = append(p.tokens, Tokenize(text))
}

// scores returns the ROUGE-L F of toks against every instruction in the
// pool, computed on all cores.
func (p *pool) scores(toks []string) []float64 {
	out := make([]float64, len(p.tokens))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(p.tokens)/256))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(out)/workers, (w+1)*len(out)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				out[i] = RougeL(toks, p.tokens[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// Run generates instructions until NumInstructions are kept (or MaxBatches
// are done), resuming from the state file when one exists.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	// Under mpirun the ranks share the teacher's work (see sharedTeacher);
	// rank 0 alone runs the loop and writes.
	if comm := train.World(); comm.Size() > 1 {
		if comm.Rank() != 0 {
			return Report{}, serveTeacher(ctx, comm, cfg.Teacher)
		}
		st := &sharedTeacher{t: cfg.Teacher, comm: comm}
		cfg.Teacher = st
		rep, err := run(ctx, cfg)
		if cerr := st.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return rep, err
	}
	return run(ctx, cfg)
}

// run is Run on one rank, or on rank 0 with a sharedTeacher.
func run(ctx context.Context, cfg Config) (Report, error) {
	rep := Report{Rejected: map[string]int{}}
	st, done, err := openState(cfg.Output+".state.jsonl", stateHeader{Version: stateVersion, SeedSHA256: seedHash(cfg.SeedTasks)})
	if err != nil {
		return rep, fmt.Errorf("self-instruct: %w", err)
	}
	defer st.Close()

	var p pool
	// seen holds every task's instruction and input, seeds included: the
	// same task is never kept twice, whatever the similarity threshold.
	seen := map[[2]string]bool{}
	for _, s := range cfg.SeedTasks {
		p.add(s.Instruction)
		for _, in := range s.Instances {
			seen[[2]string{s.Instruction, in.Input}] = true
		}
	}
	var rows []stateRow
	for _, b := range done {
		for _, r := range b.Rows {
			rows = append(rows, r)
			p.add(r.Instruction)
			seen[[2]string{r.Instruction, r.Input}] = true
		}
		for k, v := range b.Rejected {
			rep.Rejected[k] += v
		}
		rep.Requests += b.Requests
	}
	rep.Resumed = len(rows)
	batch := len(done)

	filter := NewFilter(cfg.Blocklist)
	header := strings.ReplaceAll(cfg.PromptHeader, "{num_tasks}", fmt.Sprint(cfg.NumTasksPerPrompt))
	stop := StopSequences(cfg.NumTasksPerPrompt)

	var bar *progressbar.ProgressBar
	if cfg.Progress != nil {
		bar = progressbar.NewOptions(cfg.NumInstructions, progressbar.OptionSetWriter(cfg.Progress),
			progressbar.OptionShowCount(), progressbar.OptionSetWidth(20), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(cfg.Progress) }))
		bar.Set(min(len(rows), cfg.NumInstructions))
		bar.Describe(fmt.Sprintf("self-instruct · rejected %s", formatCounts(rep.Rejected)))
	}
	lastSave := time.Now()
	save := func() error {
		lastSave = time.Now()
		return writeOutput(cfg.Output, rows, cfg.Source)
	}
	idle := 0
	for len(rows) < cfg.NumInstructions && (cfg.MaxBatches == 0 || batch < cfg.MaxBatches) {
		if err := ctx.Err(); err != nil {
			if serr := save(); serr != nil {
				return rep, serr
			}
			return rep, err
		}
		// Prompts: NumPromptInstructions seed tasks each, drawn from an RNG
		// that depends only on the seed and the batch number, so a resumed
		// run asks what an uninterrupted one would have.
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(batch)))
		prompts := make([]string, cfg.RequestBatchSize)
		for i := range prompts {
			idx := rng.Perm(len(cfg.SeedTasks))[:cfg.NumPromptInstructions]
			ex := make([]GeneratedTask, len(idx))
			for j, k := range idx {
				ex[j] = cfg.SeedTasks[k].Task()
			}
			prompts[i] = EncodePrompt(header, ex)
		}
		params := Params{MaxTokens: cfg.MaxTokens, Temperature: cfg.Temperature, TopP: cfg.TopP, Stop: stop,
			Seed: cfg.Seed*1_000_003 + uint64(batch)*uint64(cfg.RequestBatchSize)}
		replies, err := cfg.Teacher.Complete(ctx, prompts, params)
		if err != nil {
			if serr := save(); serr != nil {
				return rep, errors.Join(err, serr)
			}
			return rep, fmt.Errorf("self-instruct batch %d: %w", batch, err)
		}
		if len(replies) != len(prompts) {
			return rep, fmt.Errorf("self-instruct batch %d: teacher returned %d replies for %d prompts", batch, len(replies), len(prompts))
		}
		rejected := map[string]int{}
		var kept []stateRow
		for _, reply := range replies {
			for _, t := range ParseResponse(cfg.NumPromptInstructions, reply.Text, reply.Truncated, rejected) {
				if reason := filter.Check(t); reason != "" {
					rejected[reason]++
					continue
				}
				verified := false
				if cfg.Verifier != nil {
					err := cfg.Verifier(t)
					switch {
					case err == nil:
						verified = true
					case !errors.Is(err, ErrUnverifiable):
						rejected[ReasonVerifier]++
						continue
					case cfg.RequireVerified:
						rejected[ReasonUnverifiable]++
						continue
					}
				}
				if seen[[2]string{t.Instruction, t.Input}] {
					rejected[ReasonDuplicate]++
					continue
				}
				row, ok := similarity(&p, t, cfg.SimilarityThreshold)
				if !ok {
					rejected[ReasonSimilar]++
					continue
				}
				row.Verified = verified
				seen[[2]string{t.Instruction, t.Input}] = true
				kept = append(kept, row)
				p.add(t.Instruction)
			}
		}
		if err := st.append(stateBatch{Batch: batch, Rows: kept, Rejected: rejected, Requests: len(prompts)}); err != nil {
			return rep, err
		}
		batch++
		rows = append(rows, kept...)
		rep.Requests += len(prompts)
		for k, v := range rejected {
			rep.Rejected[k] += v
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("self-instruct · rejected %s", formatCounts(rep.Rejected)))
			bar.Set(min(len(rows), cfg.NumInstructions))
		}
		if len(kept) == 0 {
			idle++
			if idle >= cfg.MaxIdleBatches {
				rep.finish(cfg.SeedTasks, rows, batch, cfg.Verifier != nil)
				if err := save(); err != nil {
					return rep, err
				}
				return rep, fmt.Errorf("self-instruct: %d batches in a row kept nothing (rejected %s); check the teacher", idle, formatCounts(rejected))
			}
		} else {
			idle = 0
		}
		if time.Since(lastSave) >= cfg.SaveInterval {
			if err := save(); err != nil {
				return rep, err
			}
		}
	}
	if bar != nil {
		// Exit, not Finish: a run that ends at MaxBatches short of
		// NumInstructions shows what it kept, not a full bar.
		bar.Exit()
	}
	rep.finish(cfg.SeedTasks, rows, batch, cfg.Verifier != nil)
	return rep, save()
}

// StopSequences end a reply where task numTasks would begin. Alpaca stops
// at "\n{numTasks}" and "{numTasks}.", which also cut a reply inside any
// output that starts with that number or ends a sentence with it ("20.");
// these match only a block boundary: the "###" separator or a new
// instruction line.
func StopSequences(numTasks int) []string {
	return []string{fmt.Sprintf("###\n%d.", numTasks), fmt.Sprintf("\n%d. Instruction:", numTasks)}
}

// similarity scores t's instruction against the pool: the ten most
// similar instructions (ties in pool order) and the mean over the pool, as
// Alpaca records them; ok is false when the highest score is above the
// threshold.
func similarity(p *pool, t GeneratedTask, threshold float64) (stateRow, bool) {
	scores := p.scores(Tokenize(t.Instruction))
	row := stateRow{Instruction: t.Instruction, Input: t.Input, Output: t.Output}
	if len(scores) == 0 {
		return row, true
	}
	idx := make([]int, len(scores))
	var sum float64
	for i, s := range scores {
		idx[i] = i
		sum += s
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	if scores[idx[0]] > threshold {
		return row, false
	}
	for _, i := range idx[:min(10, len(idx))] {
		row.MostSimilar = append(row.MostSimilar, similarJSON{Text: p.texts[i], Score: scores[i]})
	}
	row.AvgSimilarity = sum / float64(len(scores))
	return row, true
}

func writeOutput(path string, rows []stateRow, source string) error {
	out := make([]data.GeneratedInstruction, len(rows))
	for i, r := range rows {
		g := data.GeneratedInstruction{
			Instruction:   data.Instruction{Instruction: r.Instruction, Input: r.Input, Output: r.Output, Source: source},
			AvgSimilarity: r.AvgSimilarity,
		}
		for _, s := range r.MostSimilar {
			g.MostSimilar = append(g.MostSimilar, data.Similar{Text: s.Text, Score: s.Score})
		}
		out[i] = g
	}
	if err := data.WriteGeneratedInstructions(path, out); err != nil {
		return fmt.Errorf("self-instruct: write %s: %w", path, err)
	}
	return nil
}
