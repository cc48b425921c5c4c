package world

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gotune/gotune/data"
)

// Corpus returns n pretraining documents drawn from the Train split only:
// a CorpusTaskShare fraction are single solved tasks in the Alpaca format
// (Task.Text, so that a document's end, where the pretraining stage puts its
// end-of-sequence token, follows the answer and teaches the model to stop),
// a CorpusNoise fraction of those with the plausible wrong answer; the rest
// are short paragraphs of prose stating facts of the same world ("17 plus 25
// is 42."), which teach the skills in a second form. Items repeat across
// documents, as facts do in any corpus.
func (w *World) Corpus(n int) []string {
	if n < 0 {
		panic(fmt.Sprintf("world: corpus: negative count %d", n))
	}
	fams := w.families()
	r := w.rng("corpus", Train)
	docs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		f := fams[r.intn(len(fams))]
		if r.float() < w.CorpusTaskShare {
			t := w.sample(r, f, Train, nil)
			if t.Misconceived {
				if r.float() < w.CorpusMisconception {
					docs = append(docs, t.Prompt()+t.Wrong)
				} else {
					docs = append(docs, t.Text())
				}
				continue
			}
			if r.float() < w.CorpusNoise && t.Wrong != "" {
				docs = append(docs, t.Prompt()+t.Wrong)
			} else {
				docs = append(docs, t.Text())
			}
			continue
		}
		docs = append(docs, w.paragraph(r, f))
	}
	return docs
}

// paragraph writes an introduction and three to five facts of one family.
func (w *World) paragraph(r *rng, f Family) string {
	intros := proseIntros[f]
	sentences := []string{intros[r.intn(len(intros))]}
	for k := 3 + r.intn(3); k > 0; k-- {
		spec := familyOf(f)
		var it item
		for it = spec.draw(r); SplitOf(it.key()) != Train; it = spec.draw(r) {
		}
		sentences = append(sentences, fact(it, r))
	}
	return strings.Join(sentences, " ")
}

var proseIntros = map[Family][]string{
	Add:     {"Numbers can be added together.", "Here are some sums.", "Adding two numbers gives their sum."},
	Compare: {"Some numbers are larger than others.", "Here are some numbers compared.", "Of two different numbers, one is larger."},
	Count:   {"Words are made of letters, and a letter can appear more than once.", "Here are some letters counted in words."},
	Reverse: {"A word can be written backwards, from its last letter to its first.", "Here are some words written backwards."},
	Sort:    {"Numbers can be put in order from smallest to largest.", "Here are some lists of numbers in increasing order."},
	Upper:   {"Every word can be written in capital letters.", "Here are some words in uppercase."},
}

// fact states the item's answer as one sentence of prose.
func fact(it item, r *rng) string {
	ans := it.answer()
	pick := func(s ...string) string { return s[r.intn(len(s))] }
	switch it.fam {
	case Add:
		a, b := strconv.Itoa(it.nums[0]), strconv.Itoa(it.nums[1])
		return pick(
			a+" plus "+b+" is "+ans+".",
			"The sum of "+a+" and "+b+" is "+ans+".",
			"If you add "+a+" and "+b+", you get "+ans+".",
		)
	case Compare:
		lo := strconv.Itoa(min(it.nums[0], it.nums[1]))
		a, b := strconv.Itoa(it.nums[0]), strconv.Itoa(it.nums[1])
		return pick(
			ans+" is larger than "+lo+".",
			"Of "+a+" and "+b+", the larger number is "+ans+".",
			lo+" is smaller than "+ans+".",
		)
	case Count:
		l := string(it.letter)
		switch ans {
		case "0":
			return "The word " + it.word + " has no letter " + l + "."
		case "1":
			return pick("The letter "+l+" appears once in the word "+it.word+".",
				"In the word "+it.word+", the letter "+l+" appears 1 time.")
		}
		return pick("The letter "+l+" appears "+ans+" times in the word "+it.word+".",
			"In the word "+it.word+", the letter "+l+" appears "+ans+" times.")
	case Reverse:
		return pick(
			"The word "+it.word+" written backwards is "+ans+".",
			"Spelled backwards, "+it.word+" becomes "+ans+".",
		)
	case Sort:
		in := joinInts(it.nums, ", ")
		return pick(
			"Sorted from smallest to largest, the numbers "+in+" become "+ans+".",
			"In increasing order, "+in+" is "+ans+".",
		)
	case Upper:
		return pick(
			"In capital letters, "+it.word+" is "+ans+".",
			"The word "+it.word+" in uppercase is "+ans+".",
		)
	}
	panic("world: unknown family " + string(it.fam))
}

// TaskListHeader opens every task list of TaskLists; self-instruct prompts
// that ask a model pretrained on them for new tasks open with it too.
// "{num_tasks}" stands for the number of tasks in the list.
const TaskListHeader = "A list of {num_tasks} tasks, each with its input and output.\n\n"

// TaskLists returns n pretraining documents, each a numbered list of three
// to five solved tasks of the Train split (of families drawn at random,
// with their right answers) in the format of Stanford Alpaca's
// self-instruct prompts: TaskListHeader, a blank line, then one
// data.TaskBlock per task. A model pretrained on them can be Alpaca's
// teacher: shown the first tasks of such a list, it writes more.
func (w *World) TaskLists(n int) []string {
	if n < 0 {
		panic(fmt.Sprintf("world: task lists: negative count %d", n))
	}
	fams := w.families()
	r := w.rng("tasklists", Train)
	docs := make([]string, n)
	for i := range docs {
		k := 3 + r.intn(3)
		var b strings.Builder
		b.WriteString(strings.ReplaceAll(TaskListHeader, "{num_tasks}", strconv.Itoa(k)))
		b.WriteString("\n")
		for j := 1; j <= k; j++ {
			t := w.sample(r, fams[r.intn(len(fams))], Train, nil)
			b.WriteString(data.TaskBlock(j, t.Instruction, t.Input, t.Answer))
		}
		docs[i] = b.String()
	}
	return docs
}
