package data

import (
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
)

// Column names shared by the schemas, as TRL and Alpaca spell them.
const (
	ColInstruction      = "instruction"
	ColInput            = "input"
	ColOutput           = "output"
	ColSystem           = "system"
	ColSource           = "source"
	ColMostSimilar      = "most_similar_instructions"
	ColAvgSimilarity    = "avg_similarity_score"
	ColPrompt           = "prompt"
	ColChosen           = "chosen"
	ColRejected         = "rejected"
	ColMargin           = "margin"
	ColScoreChosen      = "score_chosen"
	ColScoreRejected    = "score_rejected"
	ColRefChosenLogps   = "ref_chosen_logps"
	ColRefRejectedLogps = "ref_rejected_logps"
	// ColMessages holds a whole conversation, a list of {role, content}
	// (TRL's conversational SFT format).
	ColMessages = "messages"
	// ColConversations holds a ShareGPT conversation, a list of
	// {from, value}; import maps it onto ColMessages.
	ColConversations = "conversations"
)

// knownColumns are the column names of every schema, the targets a column
// map may name.
var knownColumns = []string{ColInstruction, ColInput, ColOutput, ColSystem, ColSource, ColMostSimilar,
	ColAvgSimilarity, ColPrompt, ColChosen, ColRejected, ColMargin, ColScoreChosen, ColScoreRejected,
	ColRefChosenLogps, ColRefRejectedLogps, ColMessages, ColConversations}

// ---- instructions ----------------------------------------------------------

func instructionColumns() []column[Instruction] {
	return []column[Instruction]{
		{name: ColInstruction, typ: colText, text: func(r *Instruction) string { return r.Instruction }},
		{name: ColInput, typ: colText, text: func(r *Instruction) string { return r.Input }},
		{name: ColOutput, typ: colText, text: func(r *Instruction) string { return r.Output }},
		{name: ColSystem, typ: colText, optional: true, text: func(r *Instruction) string { return r.System }},
		{name: ColSource, typ: colText, optional: true, text: func(r *Instruction) string { return r.Source }},
	}
}

// conversationColumns are the columns of a conversational instructions
// dataset: the whole conversation in messages (system prompts included),
// and an optional source.
func conversationColumns() []column[Instruction] {
	return []column[Instruction]{
		{name: ColMessages, typ: colMessages, messages: func(r *Instruction) []Message { return r.Messages }},
		{name: ColSource, typ: colText, optional: true, text: func(r *Instruction) string { return r.Source }},
	}
}

// WriteInstructions writes rows as an instructions dataset (Arrow IPC
// stream with `datasets` metadata), atomically: Alpaca columns, or a
// messages column when the rows are conversations (a file holds one form;
// mixing them is an error naming the first row that differs). The system
// and source columns are written only when some row has them.
func WriteInstructions(path string, rows []Instruction) error {
	conv := len(rows) > 0 && rows[0].Conversational()
	for i := range rows {
		if rows[i].Conversational() != conv {
			return fmt.Errorf("write %s: row %d is %s but row 0 is not: a file holds one form", path, i, formName(!conv))
		}
	}
	if conv {
		return writeRows(path, conversationColumns(), rows)
	}
	return writeRows(path, instructionColumns(), rows)
}

// instructionReader binds the columns of an instructions schema; messages
// is ≥ 0 for a conversational file.
type instructionReader struct{ instruction, input, output, system, source, messages int }

func bindInstructions(path string, sc *arrow.Schema) (r instructionReader, err error) {
	s := schemaColumns{path, sc}
	r.messages = -1
	if len(sc.FieldIndices(ColMessages)) > 0 && len(sc.FieldIndices(ColInstruction)) == 0 {
		if r.messages, err = s.find(ColMessages, wantMessages, true); err != nil {
			return r, err
		}
		r.instruction, r.input, r.output, r.system = -1, -1, -1, -1
		r.source, err = s.find(ColSource, wantText, false)
		return r, err
	}
	if r.instruction, err = s.find(ColInstruction, wantText, true); err != nil {
		return r, err
	}
	if r.input, err = s.find(ColInput, wantText, false); err != nil {
		return r, err
	}
	if r.output, err = s.find(ColOutput, wantText, true); err != nil {
		return r, err
	}
	if r.system, err = s.find(ColSystem, wantText, false); err != nil {
		return r, err
	}
	r.source, err = s.find(ColSource, wantText, false)
	return r, err
}

func (b instructionReader) batch(rec arrow.RecordBatch) func(i int) Instruction {
	source := textAt(rec, b.source)
	if b.messages >= 0 {
		msgs := messagesAt(rec, b.messages)
		return func(i int) Instruction { return Instruction{Messages: msgs(i), Source: source(i)} }
	}
	instruction, input, output := textAt(rec, b.instruction), textAt(rec, b.input), textAt(rec, b.output)
	system := textAt(rec, b.system)
	return func(i int) Instruction {
		return Instruction{Instruction: instruction(i), Input: input(i), Output: output(i), System: system(i), Source: source(i)}
	}
}

// StreamInstructions calls fn with every row of an instructions dataset
// (row counts from 0), one record batch in memory at a time. Rows of a
// conversational file have Messages set.
func StreamInstructions(path string, fn func(row int, r Instruction) error) error {
	return streamRows(path, bindInstructions, instructionReader.batch, fn)
}

// ReadInstructions reads a whole instructions dataset.
func ReadInstructions(path string) ([]Instruction, error) {
	return readRows(path, StreamInstructions)
}

// ---- generated instructions -------------------------------------------------

func generatedColumns() []column[GeneratedInstruction] {
	var cols []column[GeneratedInstruction]
	for _, c := range instructionColumns() {
		text := c.text
		cols = append(cols, column[GeneratedInstruction]{name: c.name, typ: c.typ, optional: c.optional,
			text: func(r *GeneratedInstruction) string { return text(&r.Instruction) }})
	}
	return append(cols,
		column[GeneratedInstruction]{name: ColMostSimilar, typ: colSimilars,
			similars: func(r *GeneratedInstruction) []Similar { return r.MostSimilar }},
		column[GeneratedInstruction]{name: ColAvgSimilarity, typ: colFloat,
			float: func(r *GeneratedInstruction) *float64 { return &r.AvgSimilarity }},
	)
}

// WriteGeneratedInstructions writes self-instruct output, atomically.
func WriteGeneratedInstructions(path string, rows []GeneratedInstruction) error {
	return writeRows(path, generatedColumns(), rows)
}

type generatedReader struct {
	instructionReader
	similar, avg int
}

func bindGenerated(path string, sc *arrow.Schema) (r generatedReader, err error) {
	if r.instructionReader, err = bindInstructions(path, sc); err != nil {
		return r, err
	}
	s := schemaColumns{path, sc}
	if r.similar, err = s.find(ColMostSimilar, wantSimilars, false); err != nil {
		return r, err
	}
	r.avg, err = s.find(ColAvgSimilarity, wantNumber, false)
	return r, err
}

func (b generatedReader) batch(rec arrow.RecordBatch) func(i int) GeneratedInstruction {
	ins := b.instructionReader.batch(rec)
	similar, avg := similarsAt(rec, b.similar), floatAt(rec, b.avg)
	return func(i int) GeneratedInstruction {
		g := GeneratedInstruction{Instruction: ins(i), MostSimilar: similar(i)}
		if v := avg(i); v != nil {
			g.AvgSimilarity = *v
		}
		return g
	}
}

// StreamGeneratedInstructions calls fn with every row of a generated
// instructions dataset, one record batch in memory at a time.
func StreamGeneratedInstructions(path string, fn func(row int, r GeneratedInstruction) error) error {
	return streamRows(path, bindGenerated, generatedReader.batch, fn)
}

// ReadGeneratedInstructions reads a whole generated instructions dataset.
func ReadGeneratedInstructions(path string) ([]GeneratedInstruction, error) {
	return readRows(path, StreamGeneratedInstructions)
}

// ---- preferences ------------------------------------------------------------

func preferenceScoreColumns() []column[Preference] {
	opt := func(name string, get func(*Preference) *float64) column[Preference] {
		return column[Preference]{name: name, typ: colFloat, optional: true, float: get}
	}
	return []column[Preference]{
		opt(ColMargin, func(r *Preference) *float64 { return r.Margin }),
		opt(ColScoreChosen, func(r *Preference) *float64 { return r.ScoreChosen }),
		opt(ColScoreRejected, func(r *Preference) *float64 { return r.ScoreRejected }),
		opt(ColRefChosenLogps, func(r *Preference) *float64 { return r.RefChosenLogp }),
		opt(ColRefRejectedLogps, func(r *Preference) *float64 { return r.RefRejectedLogp }),
	}
}

func preferenceColumns(conversational bool) []column[Preference] {
	var cols []column[Preference]
	if conversational {
		cols = []column[Preference]{
			{name: ColPrompt, typ: colMessages, messages: func(r *Preference) []Message { return r.PromptMessages }},
			{name: ColChosen, typ: colMessages, messages: func(r *Preference) []Message { return r.ChosenMessages }},
			{name: ColRejected, typ: colMessages, messages: func(r *Preference) []Message { return r.RejectedMessages }},
		}
	} else {
		cols = []column[Preference]{
			{name: ColPrompt, typ: colText, text: func(r *Preference) string { return r.Prompt }},
			{name: ColChosen, typ: colText, text: func(r *Preference) string { return r.Chosen }},
			{name: ColRejected, typ: colText, text: func(r *Preference) string { return r.Rejected }},
		}
	}
	return append(cols, preferenceScoreColumns()...)
}

// WritePreferences writes preference pairs, atomically: as text columns, or
// as message lists when the rows are conversational (a file holds one form;
// mixing them is an error naming the first row that differs). Score columns
// are written only when some row has them.
func WritePreferences(path string, rows []Preference) error {
	conv := len(rows) > 0 && rows[0].Conversational()
	for i := range rows {
		if rows[i].Conversational() != conv {
			return fmt.Errorf("write %s: row %d is %s but row 0 is not: a file holds one form", path, i, formName(!conv))
		}
	}
	return writeRows(path, preferenceColumns(conv), rows)
}

func formName(conversational bool) string {
	if conversational {
		return "conversational"
	}
	return "plain text"
}

type preferenceReader struct {
	prompt, chosen, rejected                   int
	promptMsgs, conversational                 bool
	margin, sChosen, sRejected, rChosen, rRejd int
}

func bindPreferences(path string, sc *arrow.Schema) (r preferenceReader, err error) {
	s := schemaColumns{path, sc}
	if r.chosen, err = s.find(ColChosen, wantTextOrMessages, true); err != nil {
		return r, err
	}
	r.conversational = isMessages(sc.Field(r.chosen).Type)
	form := wantText
	if r.conversational {
		form = wantMessages
	}
	if r.rejected, err = s.find(ColRejected, form, true); err != nil {
		return r, err
	}
	if r.prompt, err = s.find(ColPrompt, wantTextOrMessages, false); err != nil {
		return r, err
	}
	r.promptMsgs = r.prompt >= 0 && isMessages(sc.Field(r.prompt).Type)
	for _, f := range []struct {
		idx  *int
		name string
	}{{&r.margin, ColMargin}, {&r.sChosen, ColScoreChosen}, {&r.sRejected, ColScoreRejected},
		{&r.rChosen, ColRefChosenLogps}, {&r.rRejd, ColRefRejectedLogps}} {
		if *f.idx, err = s.find(f.name, wantNumber, false); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (b preferenceReader) batch(rec arrow.RecordBatch) func(i int) Preference {
	margin, sc, sr := floatAt(rec, b.margin), floatAt(rec, b.sChosen), floatAt(rec, b.sRejected)
	rc, rr := floatAt(rec, b.rChosen), floatAt(rec, b.rRejd)
	var prompt func(int) string
	var promptMsgs func(int) []Message
	if b.promptMsgs {
		promptMsgs = messagesAt(rec, b.prompt)
	} else {
		prompt = textAt(rec, b.prompt)
	}
	var chosen, rejected func(int) string
	var chosenMsgs, rejectedMsgs func(int) []Message
	if b.conversational {
		chosenMsgs, rejectedMsgs = messagesAt(rec, b.chosen), messagesAt(rec, b.rejected)
	} else {
		chosen, rejected = textAt(rec, b.chosen), textAt(rec, b.rejected)
	}
	return func(i int) Preference {
		p := Preference{Margin: margin(i), ScoreChosen: sc(i), ScoreRejected: sr(i), RefChosenLogp: rc(i), RefRejectedLogp: rr(i)}
		if b.promptMsgs {
			p.PromptMessages = promptMsgs(i)
		} else {
			p.Prompt = prompt(i)
		}
		if b.conversational {
			p.ChosenMessages, p.RejectedMessages = chosenMsgs(i), rejectedMsgs(i)
		} else {
			p.Chosen, p.Rejected = chosen(i), rejected(i)
		}
		return p
	}
}

// StreamPreferences calls fn with every row of a preferences dataset (row
// counts from 0), one record batch in memory at a time. Rows are returned as
// stored: conversational files fill the *Messages fields.
func StreamPreferences(path string, fn func(row int, p Preference) error) error {
	return streamRows(path, bindPreferences, preferenceReader.batch, fn)
}

// ReadPreferences reads a whole preferences dataset.
func ReadPreferences(path string) ([]Preference, error) {
	return readRows(path, StreamPreferences)
}

// ---- prompts ----------------------------------------------------------------

func promptColumns(conversational bool) []column[Prompt] {
	if conversational {
		return []column[Prompt]{{name: ColPrompt, typ: colMessages, messages: func(r *Prompt) []Message { return r.Messages }}}
	}
	return []column[Prompt]{{name: ColPrompt, typ: colText, text: func(r *Prompt) string { return r.Prompt }}}
}

// WritePrompts writes prompts, atomically: a text column, or message lists
// when the rows are conversational (one form per file).
func WritePrompts(path string, rows []Prompt) error {
	conv := len(rows) > 0 && rows[0].Conversational()
	for i := range rows {
		if rows[i].Conversational() != conv {
			return fmt.Errorf("write %s: row %d is %s but row 0 is not: a file holds one form", path, i, formName(!conv))
		}
	}
	return writeRows(path, promptColumns(conv), rows)
}

type promptReader struct {
	prompt int
	msgs   bool
}

func bindPrompts(path string, sc *arrow.Schema) (r promptReader, err error) {
	r.prompt, err = schemaColumns{path, sc}.find(ColPrompt, wantTextOrMessages, true)
	if err == nil {
		r.msgs = isMessages(sc.Field(r.prompt).Type)
	}
	return r, err
}

func (b promptReader) batch(rec arrow.RecordBatch) func(i int) Prompt {
	if b.msgs {
		msgs := messagesAt(rec, b.prompt)
		return func(i int) Prompt { return Prompt{Messages: msgs(i)} }
	}
	text := textAt(rec, b.prompt)
	return func(i int) Prompt { return Prompt{Prompt: text(i)} }
}

// StreamPrompts calls fn with every row of a prompts dataset, one record
// batch in memory at a time.
func StreamPrompts(path string, fn func(row int, p Prompt) error) error {
	return streamRows(path, bindPrompts, promptReader.batch, fn)
}

// ReadPrompts reads a whole prompts dataset.
func ReadPrompts(path string) ([]Prompt, error) {
	return readRows(path, StreamPrompts)
}

// ---- shared -------------------------------------------------------------------

// streamRows drives a kind's reader over every record batch of a dataset.
func streamRows[R, T any](path string, bind func(string, *arrow.Schema) (R, error),
	batch func(R, arrow.RecordBatch) func(int) T, fn func(int, T) error) error {
	d, err := OpenDataset(path)
	if err != nil {
		return err
	}
	defer d.Close()
	reader, err := bind(path, d.Schema())
	if err != nil {
		return err
	}
	row := 0
	for {
		rec, err := d.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		at := batch(reader, rec)
		for i := 0; i < int(rec.NumRows()); i++ {
			if err := fn(row, at(i)); err != nil {
				return err
			}
			row++
		}
	}
}

func readRows[T any](path string, stream func(string, func(int, T) error) error) ([]T, error) {
	var rows []T
	err := stream(path, func(_ int, r T) error {
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

// DetectKind tells a dataset's kind from its columns.
func DetectKind(sc *arrow.Schema) (Kind, error) {
	has := func(name string) bool { return len(sc.FieldIndices(name)) > 0 }
	switch {
	case has(ColChosen) && has(ColRejected):
		return KindPreferences, nil
	case has(ColInstruction) && has(ColOutput) && has(ColMostSimilar):
		return KindGeneratedInstructions, nil
	case has(ColInstruction) && has(ColOutput), has(ColMessages):
		return KindInstructions, nil
	case has(ColPrompt):
		return KindPrompts, nil
	}
	return "", fmt.Errorf("no dataset kind has columns %v", fieldNames(sc))
}
