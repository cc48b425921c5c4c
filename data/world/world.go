// Package world is gotune's embedded default: a small, seeded, fully
// deterministic world of verifiable instruction tasks (addition, comparing
// numbers, counting letters, reversing words, sorting numbers, writing words
// in capitals) in which every stage's effect can be measured by exact match,
// without any download.
//
// From one seed it yields everything the pipeline needs:
//
//   - a pretraining corpus (Corpus): solved tasks in the Alpaca format mixed
//     with plain prose stating facts of the same world;
//   - self-instruct seed tasks in Alpaca's seed format (SeedTasks);
//   - instruction data for SFT (Instructions);
//   - preference pairs whose rejected answer is a plausible wrong one
//     (Preferences);
//   - prompts for PPO (Prompts);
//   - held-out evaluation sets (Tasks with Valid or Test), scored by Check.
//
// Every task is an item of a family (for example the addition 17 + 25) with a
// canonical key (add|17+25, the same for 25 + 17). The key alone decides the
// item's split through a fixed hash, so an item of the Test split can never
// appear in training data, in any phrasing, for any seed. The seed only
// decides which items are drawn, how they are phrased and in which order.
//
// Check is for evaluation only: training must learn rewards from preference
// data (the reward stage), never call Check.
//
// May import: data/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never model/..., finetune, train, lora, a stage or an
// application.
package world

import (
	"fmt"
	"hash/fnv"
	"math/bits"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/verify"
	"github.com/gotune/gotune/tokenizer"
)

// Split names a disjoint part of the world's items.
type Split int

const (
	// Train items feed the corpus, the seed tasks and all training data.
	Train Split = iota
	// Valid items are held out for evaluation during training (the eval_ metrics).
	Valid
	// Test items are held out for the final exact-match accuracy.
	Test
)

// splitSalt versions the item-to-split assignment: changing it would move
// items between splits, so it never changes within a release.
const splitSalt = "gotune/world/v1|"

// String returns the split's name: "train", "valid" or "test".
func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Valid:
		return "valid"
	case Test:
		return "test"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// ParseSplit reads a split name as written by Split.String.
func ParseSplit(name string) (Split, error) {
	switch name {
	case "train":
		return Train, nil
	case "valid", "validation", "eval":
		return Valid, nil
	case "test":
		return Test, nil
	}
	return 0, fmt.Errorf("world: unknown split %q (want train, valid or test)", name)
}

// Version numbers the data generation: it changes whenever the data of a
// seed changes (TestGolden pins them), so that cached outputs keyed by the
// seed, such as the pipeline's base model, are rebuilt.
const Version = 2

// SplitOf returns the split an item key belongs to: 10% test, 10% valid,
// 80% train, by a fixed 64-bit FNV-1a hash of the key. It depends on nothing
// else, so splits are disjoint by construction.
func SplitOf(key string) Split {
	h := fnv.New64a()
	h.Write([]byte(splitSalt))
	h.Write([]byte(key))
	switch h.Sum64() % 10 {
	case 0:
		return Test
	case 1:
		return Valid
	}
	return Train
}

// Task is one verifiable instruction: an Alpaca-style instruction and input,
// its exact answer and one plausible wrong answer.
type Task struct {
	Family      Family // the skill the task exercises
	Key         string // canonical item key; decides the split
	Instruction string // the instruction, as in Alpaca's "instruction" field
	Input       string // the input, "" when the instruction stands alone
	Answer      string // the exact correct answer
	Wrong       string // a plausible wrong answer (off by one, wrong order, wrong case, …)
	// Misconceived reports that a classic mistake changes this task's
	// answer (see CorpusMisconception); Wrong is then that mistake's answer.
	Misconceived bool
}

// Split returns the split the task's item belongs to.
func (t Task) Split() Split { return SplitOf(t.Key) }

// Prompt returns the task rendered with the Stanford Alpaca prompt template
// (tokenizer.FormatAlpaca).
func (t Task) Prompt() string { return tokenizer.FormatAlpaca(t.Instruction, t.Input) }

// Text returns the prompt followed directly by the answer: the training text
// of a solved task, concatenated as Stanford Alpaca concatenates source and
// target.
func (t Task) Text() string { return t.Prompt() + t.Answer }

// World generates the default data from a seed. Its fields may be changed
// after New and before use; the zero World is not valid, use New.
type World struct {
	// Seed decides which items are drawn, their phrasing and their order.
	Seed int64
	// Families lists the task families in use (default: all of Families()).
	Families []Family
	// CorpusTaskShare is the fraction of Corpus documents that are solved
	// tasks in the Alpaca format; the rest are prose about the same world.
	CorpusTaskShare float64
	// CorpusNoise is the fraction of solved-task corpus documents whose
	// answer is the plausible wrong one, as in any corpus with mistakes: the
	// base model then prefers wrong answers now and then, which preference
	// training can measurably correct.
	CorpusNoise float64
	// CorpusMisconception is the fraction of solved-task corpus documents,
	// among those whose task a classic mistake changes (Task.Misconceived:
	// the carry forgotten, numbers compared and sorted as strings, only the
	// first occurrence counted, only the first letter capitalised), that
	// give the mistaken answer: a misconception the corpus teaches, which
	// the base model learns and the later stages must unlearn.
	CorpusMisconception float64
}

// Defaults of New, tuned for a tiny model (dim 128, 4 layers) pretrained for
// a few minutes: it learns the format and part of the skills, leaving room
// for SFT, DPO and PPO to raise held-out exact match.
const (
	DefaultCorpusTaskShare     = 0.5
	DefaultCorpusNoise         = 0.1
	DefaultCorpusMisconception = 0.6
)

// New returns the world of the given seed with the default settings.
func New(seed int64) *World {
	return &World{
		Seed:            seed,
		Families:        Families(),
		CorpusTaskShare: DefaultCorpusTaskShare,
		CorpusNoise:     DefaultCorpusNoise,

		CorpusMisconception: DefaultCorpusMisconception,
	}
}

// Tasks returns n tasks of the split, the families taking turns (so each
// family gets n/len(Families) tasks, ±1), in a seeded shuffled order. Items
// do not repeat within one call while the split has unused items left; a
// family whose split is exhausted (the word families have a few hundred
// items) repeats items. The result depends only on Seed, Families, split and
// n, never on earlier calls.
func (w *World) Tasks(split Split, n int) []Task {
	return w.draw("tasks", split, n)
}

// draw is Tasks with a purpose string that gives each kind of data its own
// random stream, so that for example the preference pairs are not the SFT
// tasks again.
func (w *World) draw(purpose string, split Split, n int) []Task {
	if n < 0 {
		panic(fmt.Sprintf("world: %s: negative count %d", purpose, n))
	}
	fams := w.families()
	r := w.rng(purpose, split)
	seen := make(map[string]bool, n)
	out := make([]Task, 0, n)
	for i := 0; i < n; i++ {
		f := fams[i%len(fams)]
		out = append(out, w.sample(r, f, split, seen))
	}
	r.shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// maxFresh bounds the draws spent looking for an item not yet used in a call.
const maxFresh = 200

// sample draws one task of family f from split, preferring items not in
// seen and recording the one drawn; a nil seen allows repeats.
func (w *World) sample(r *rng, f Family, split Split, seen map[string]bool) Task {
	spec := familyOf(f)
	var it item
	for try := 0; ; try++ {
		it = spec.draw(r)
		k := it.key()
		if SplitOf(k) != split {
			continue
		}
		if seen == nil {
			break // repeats allowed
		}
		if !seen[k] || try >= maxFresh {
			seen[k] = true
			break
		}
	}
	tpl := spec.templates[r.intn(len(spec.templates))]
	return it.task(tpl, r)
}

// families returns the families in use, validated.
func (w *World) families() []Family {
	if len(w.Families) == 0 {
		panic("world: no families (use world.New)")
	}
	for _, f := range w.Families {
		familyOf(f) // panics on an unknown family: a programmer error
	}
	return w.Families
}

// rng returns the random stream of one purpose and split.
func (w *World) rng(purpose string, split Split) *rng {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%d", w.Seed, purpose, split)
	return &rng{state: h.Sum64()}
}

// Instruction is one row of the instructions dataset (Alpaca's fields).
type Instruction struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

// Row returns the instruction as a row of an instructions dataset.
func (i Instruction) Row() data.Instruction {
	return data.Instruction{Instruction: i.Instruction, Input: i.Input, Output: i.Output}
}

// Instructions are rows of the instructions dataset.
type Instructions []Instruction

// Rows returns the instructions as rows of an instructions dataset.
func (s Instructions) Rows() []data.Instruction { return rows[data.Instruction](s) }

// Instructions returns n SFT examples of the split, with correct outputs.
func (w *World) Instructions(split Split, n int) Instructions {
	tasks := w.draw("instructions", split, n)
	out := make(Instructions, len(tasks))
	for i, t := range tasks {
		out[i] = Instruction{Instruction: t.Instruction, Input: t.Input, Output: t.Answer}
	}
	return out
}

// Conversations returns n multi-turn SFT conversations of the split: each
// two or three user turns, a task whose instruction stands alone (no
// input: a chat message has no Alpaca input section), each answered right
// by the assistant. Families whose phrasings all need an input (sorting)
// do not appear.
func (w *World) Conversations(split Split, n int) []data.Instruction {
	if n < 0 {
		panic(fmt.Sprintf("world: conversations: negative count %d", n))
	}
	var fams []Family
	for _, f := range w.families() {
		for _, tpl := range familyOf(f).templates {
			if tpl.input == "" {
				fams = append(fams, f)
				break
			}
		}
	}
	if len(fams) == 0 {
		panic("world: conversations: no family has a phrasing without input")
	}
	r := w.rng("conversations", split)
	out := make([]data.Instruction, n)
	for i := range out {
		turns := 2 + r.intn(2)
		msgs := make([]data.Message, 0, 2*turns)
		for range turns {
			t := w.sample(r, fams[r.intn(len(fams))], split, nil)
			for t.Input != "" {
				t = w.sample(r, t.Family, split, nil)
			}
			msgs = append(msgs, data.Message{Role: data.RoleUser, Content: t.Instruction}, data.Message{Role: data.RoleAssistant, Content: t.Answer})
		}
		out[i] = data.Instruction{Messages: msgs}
	}
	return out
}

// Preference is one row of the preferences dataset: the Alpaca prompt, the
// correct completion and a plausible wrong one (TRL's standard format, where
// prompt + chosen is the full chosen text).
type Preference struct {
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
	Task     Task   `json:"-"`
}

// Row returns the pair as a row of a preferences dataset, without its task.
func (p Preference) Row() data.Preference {
	return data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected}
}

// Preferences are rows of the preferences dataset.
type Preferences []Preference

// Rows returns the pairs as rows of a preferences dataset.
func (s Preferences) Rows() []data.Preference { return rows[data.Preference](s) }

// Preferences returns n preference pairs of the split.
func (w *World) Preferences(split Split, n int) Preferences {
	tasks := w.draw("preferences", split, n)
	out := make(Preferences, len(tasks))
	for i, t := range tasks {
		out[i] = Preference{Prompt: t.Prompt(), Chosen: t.Answer, Rejected: t.Wrong, Task: t}
	}
	return out
}

// Prompt is one row of the prompts dataset, with the task it asks for (for
// evaluation; PPO itself sees only the prompt).
type Prompt struct {
	Prompt string `json:"prompt"`
	Task   Task   `json:"-"`
}

// Row returns the prompt as a row of a prompts dataset, without its task.
func (p Prompt) Row() data.Prompt { return data.Prompt{Prompt: p.Prompt} }

// Prompts are rows of the prompts dataset.
type Prompts []Prompt

// Rows returns the prompts as rows of a prompts dataset.
func (s Prompts) Rows() []data.Prompt { return rows[data.Prompt](s) }

// rows converts rows of the world into rows of a dataset.
func rows[R any, W interface{ Row() R }](s []W) []R {
	out := make([]R, len(s))
	for i, x := range s {
		out[i] = x.Row()
	}
	return out
}

// Prompts returns n PPO prompts of the split.
func (w *World) Prompts(split Split, n int) Prompts {
	tasks := w.draw("prompts", split, n)
	out := make(Prompts, len(tasks))
	for i, t := range tasks {
		out[i] = Prompt{Prompt: t.Prompt(), Task: t}
	}
	return out
}

// Check reports whether answer is exactly the task's answer, up to white
// space (verify.ExactMatch). It is the evaluation metric, never a training
// reward.
func Check(t Task, answer string) bool {
	return verify.ExactMatch(answer, t.Answer)
}

// Accuracy is an exact-match score, overall and per family.
type Accuracy struct {
	Correct, Total int
	PerFamily      map[Family][2]int // family → {correct, total}
}

// Rate returns Correct/Total (0 when empty).
func (a Accuracy) Rate() float64 {
	if a.Total == 0 {
		return 0
	}
	return float64(a.Correct) / float64(a.Total)
}

// Score checks answers[i] against tasks[i]; the lengths must match.
func Score(tasks []Task, answers []string) (Accuracy, error) {
	if len(tasks) != len(answers) {
		return Accuracy{}, fmt.Errorf("world: score %d answers for %d tasks", len(answers), len(tasks))
	}
	acc := Accuracy{PerFamily: map[Family][2]int{}}
	for i, t := range tasks {
		c := acc.PerFamily[t.Family]
		c[1]++
		acc.Total++
		if Check(t, answers[i]) {
			c[0]++
			acc.Correct++
		}
		acc.PerFamily[t.Family] = c
	}
	return acc, nil
}

// rng is SplitMix64 (Steele, Lea & Flood 2014): tiny, fast and, unlike the
// standard library's generators, fixed here forever, so the data of a seed
// never changes with the Go version.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a uniform int in [0, n) by Lemire's multiply-shift (bias
// below 2⁻⁵⁰ for the small n used here).
func (r *rng) intn(n int) int {
	if n <= 0 {
		panic("world: intn of non-positive n")
	}
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// float returns a uniform float64 in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// shuffle is the Fisher–Yates shuffle.
func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}
