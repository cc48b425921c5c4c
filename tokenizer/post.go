package tokenizer

// postProcessor adds the special tokens a model expects around a sequence
// (the "post_processor" of a tokenizer.json), for single sequences.
type postProcessor interface {
	process(ids []int, addSpecial bool) []int
	// around returns the special ids placed before and after the sequence.
	around() (before, after []int)
}

// templateItem is one element of a TemplateProcessing "single" template:
// the sequence itself, or the ids of a special token.
type templateItem struct {
	sequence bool
	ids      []int
}

// templatePost is TemplateProcessing, e.g. "<s> $A" for Llama-2.
type templatePost struct{ single []templateItem }

func (p *templatePost) process(ids []int, addSpecial bool) []int {
	if !addSpecial {
		return ids
	}
	out := make([]int, 0, len(ids)+4)
	for _, it := range p.single {
		if it.sequence {
			out = append(out, ids...)
		} else {
			out = append(out, it.ids...)
		}
	}
	return out
}

func (p *templatePost) around() (before, after []int) {
	seen := false
	for _, it := range p.single {
		switch {
		case it.sequence:
			seen = true
		case seen:
			after = append(after, it.ids...)
		default:
			before = append(before, it.ids...)
		}
	}
	return before, after
}

// wrapPost is BertProcessing and RobertaProcessing for one sequence:
// cls, the sequence, sep.
type wrapPost struct{ cls, sep int }

func (p *wrapPost) process(ids []int, addSpecial bool) []int {
	if !addSpecial {
		return ids
	}
	out := make([]int, 0, len(ids)+2)
	out = append(out, p.cls)
	out = append(out, ids...)
	return append(out, p.sep)
}

func (p *wrapPost) around() (before, after []int) { return []int{p.cls}, []int{p.sep} }

// noPost is a post-processor that adds nothing to the ids (ByteLevel, whose
// only work in the reference is on offsets).
type noPost struct{}

func (noPost) process(ids []int, _ bool) []int { return ids }
func (noPost) around() (before, after []int)   { return nil, nil }

type postSequence []postProcessor

func (q postSequence) process(ids []int, addSpecial bool) []int {
	for _, p := range q {
		ids = p.process(ids, addSpecial)
	}
	return ids
}

func (q postSequence) around() (before, after []int) {
	for _, p := range q {
		b, a := p.around()
		before = append(b, before...)
		after = append(after, a...)
	}
	return before, after
}
