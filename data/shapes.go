package data

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Shapes are the layouts of rows in the wild that Import maps onto gotune's
// schemas. Each is named in the import report.
const (
	// ShapeAlpaca: instruction, input, output (Stanford Alpaca).
	ShapeAlpaca = "alpaca"
	// ShapeMessages: a messages column of {role, content} conversations
	// (TRL's conversational SFT format).
	ShapeMessages = "messages"
	// ShapeShareGPT: a conversations column of {from, value} turns, from
	// human, gpt or system (mapped to user, assistant and system).
	ShapeShareGPT = "sharegpt"
	// ShapeSelfInstruct: Alpaca plus most_similar_instructions and
	// avg_similarity_score (self-instruct's output).
	ShapeSelfInstruct = "self-instruct"
	// ShapeTRLStandard: prompt, chosen, rejected as text.
	ShapeTRLStandard = "trl-standard"
	// ShapeTRLImplicit: chosen and rejected as text sharing their prompt;
	// the prompt is their longest common prefix.
	ShapeTRLImplicit = "trl-standard-implicit-prompt"
	// ShapeTRLConversational: prompt, chosen, rejected as message lists.
	ShapeTRLConversational = "trl-conversational"
	// ShapeTRLConversationalImplicit: chosen and rejected as whole
	// conversations; the prompt is the messages they share at the start.
	ShapeTRLConversationalImplicit = "trl-conversational-implicit-prompt"
	// ShapeHHRLHF: Anthropic hh-rlhf transcripts "\n\nHuman: … \n\nAssistant: …",
	// split at the last Assistant turn into prompt messages and one answer.
	ShapeHHRLHF = "hh-rlhf"
	// ShapeUltraFeedback: UltraFeedback-binarized, whole conversations in
	// chosen and rejected plus score_chosen and score_rejected.
	ShapeUltraFeedback = "ultrafeedback-binarized"
	// ShapePrompts: a prompt text column.
	ShapePrompts = "prompts"
	// ShapePromptsConversational: a prompt column of message lists.
	ShapePromptsConversational = "prompts-conversational"
)

// Shapes lists every shape Import knows.
var Shapes = []string{ShapeAlpaca, ShapeMessages, ShapeShareGPT, ShapeSelfInstruct, ShapeTRLStandard, ShapeTRLImplicit,
	ShapeTRLConversational, ShapeTRLConversationalImplicit, ShapeHHRLHF, ShapeUltraFeedback,
	ShapePrompts, ShapePromptsConversational}

// shapeKind is the kind each shape imports into.
var shapeKind = map[string]Kind{
	ShapeAlpaca: KindInstructions, ShapeMessages: KindInstructions, ShapeShareGPT: KindInstructions,
	ShapeSelfInstruct: KindGeneratedInstructions,
	ShapeTRLStandard:  KindPreferences, ShapeTRLImplicit: KindPreferences,
	ShapeTRLConversational: KindPreferences, ShapeTRLConversationalImplicit: KindPreferences,
	ShapeHHRLHF: KindPreferences, ShapeUltraFeedback: KindPreferences,
	ShapePrompts: KindPrompts, ShapePromptsConversational: KindPrompts,
}

// shapeColumns lists the input columns each shape requires.
var shapeColumns = map[string][]string{
	ShapeAlpaca:                    {ColInstruction, ColOutput},
	ShapeMessages:                  {ColMessages},
	ShapeShareGPT:                  {ColConversations},
	ShapeSelfInstruct:              {ColInstruction, ColOutput},
	ShapeTRLStandard:               {ColPrompt, ColChosen, ColRejected},
	ShapeTRLImplicit:               {ColChosen, ColRejected},
	ShapeTRLConversational:         {ColPrompt, ColChosen, ColRejected},
	ShapeTRLConversationalImplicit: {ColChosen, ColRejected},
	ShapeHHRLHF:                    {ColChosen, ColRejected},
	ShapeUltraFeedback:             {ColChosen, ColRejected},
	ShapePrompts:                   {ColPrompt},
	ShapePromptsConversational:     {ColPrompt},
}

// fields reads typed, validated values out of one record.
type fields struct {
	m        map[string]any
	stringly bool // CSV: numbers arrive as text
}

func (f fields) has(col string) bool {
	v, ok := f.m[col]
	return ok && v != nil
}

// text returns a text value. Required text must be present and not blank;
// optional text reads "" when missing or null.
func (f fields) text(col string, required bool) (string, *reasonError) {
	v, ok := f.m[col]
	if !ok || v == nil {
		if !required {
			return "", nil
		}
		if !ok {
			return "", rowProblem(col, ReasonMissing, "")
		}
		return "", rowProblem(col, ReasonNull, "null, want text")
	}
	s, ok := v.(string)
	if !ok {
		return "", rowProblem(col, ReasonWrongType, "wrong type %s, want string", jsonTypeName(v))
	}
	if !utf8.ValidString(s) {
		return "", rowProblem(col, ReasonInvalidUTF8, "")
	}
	if required && strings.TrimSpace(s) == "" {
		return "", rowProblem(col, ReasonEmpty, "")
	}
	return s, nil
}

// number returns an optional finite number (nil when missing or null).
func (f fields) number(col string) (*float64, *reasonError) {
	v, ok := f.m[col]
	if !ok || v == nil {
		return nil, nil
	}
	var x float64
	switch v := v.(type) {
	case float64:
		x = v
	case string:
		if !f.stringly {
			return nil, rowProblem(col, ReasonWrongType, "wrong type string, want number")
		}
		if strings.TrimSpace(v) == "" {
			return nil, nil
		}
		var err error
		if x, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			return nil, rowProblem(col, ReasonWrongType, "%q is not a number", v)
		}
	default:
		return nil, rowProblem(col, ReasonWrongType, "wrong type %s, want number", jsonTypeName(v))
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil, rowProblem(col, ReasonNotFinite, "%v is not a finite number", x)
	}
	return &x, nil
}

// messages returns a required list of {role, content} messages: at least
// one message, every role non-empty text, every content text (null reads
// as ""), and not every content blank.
func (f fields) messages(col string) ([]Message, *reasonError) {
	v, ok := f.m[col]
	if !ok {
		return nil, rowProblem(col, ReasonMissing, "")
	}
	if v == nil {
		return nil, rowProblem(col, ReasonNull, "null, want a list of messages")
	}
	list, ok := v.([]any)
	if !ok {
		return nil, rowProblem(col, ReasonWrongType, "wrong type %s, want a list of messages", jsonTypeName(v))
	}
	if len(list) == 0 {
		return nil, rowProblem(col, ReasonEmpty, "empty list of messages")
	}
	msgs := make([]Message, len(list))
	blank := true
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, rowProblem(col, ReasonBadMessages, "message %d: wrong type %s, want an object with role and content", i+1, jsonTypeName(item))
		}
		role, ok := m["role"].(string)
		if !ok || strings.TrimSpace(role) == "" {
			return nil, rowProblem(col, ReasonBadMessages, "message %d: role missing or not text", i+1)
		}
		var content string
		switch c := m["content"].(type) {
		case string:
			content = c
		case nil:
		default:
			return nil, rowProblem(col, ReasonBadMessages, "message %d: content has wrong type %s, want string", i+1, jsonTypeName(c))
		}
		if !utf8.ValidString(role) || !utf8.ValidString(content) {
			return nil, rowProblem(col, ReasonInvalidUTF8, "message %d: invalid UTF-8", i+1)
		}
		blank = blank && strings.TrimSpace(content) == ""
		msgs[i] = Message{Role: role, Content: content}
	}
	if blank {
		return nil, rowProblem(col, ReasonEmpty, "")
	}
	return msgs, nil
}

// isList reports whether the column holds a list (a message list).
func (f fields) isList(col string) bool {
	_, ok := f.m[col].([]any)
	return ok
}

// ---- instructions -----------------------------------------------------------

func convertAlpaca(f fields) (Instruction, *reasonError) {
	var r Instruction
	var err *reasonError
	if r.Instruction, err = f.text(ColInstruction, true); err != nil {
		return r, err
	}
	if r.Input, err = f.text(ColInput, false); err != nil {
		return r, err
	}
	if r.Output, err = f.text(ColOutput, true); err != nil {
		return r, err
	}
	if r.System, err = f.text(ColSystem, false); err != nil {
		return r, err
	}
	r.Source, err = f.text(ColSource, false)
	return r, err
}

func convertSelfInstruct(f fields) (GeneratedInstruction, *reasonError) {
	ins, err := convertAlpaca(f)
	g := GeneratedInstruction{Instruction: ins}
	if err != nil {
		return g, err
	}
	if g.MostSimilar, err = f.similars(ColMostSimilar); err != nil {
		return g, err
	}
	avg, err := f.number(ColAvgSimilarity)
	if avg != nil {
		g.AvgSimilarity = *avg
	}
	return g, err
}

// similars reads most_similar_instructions as a list of {text, score}, or
// as self-instruct's own {text: score} object (sorted by falling score).
func (f fields) similars(col string) ([]Similar, *reasonError) {
	switch v := f.m[col].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		out := make([]Similar, 0, len(v))
		for text, s := range v {
			score, ok := s.(float64)
			if !ok {
				return nil, rowProblem(col, ReasonWrongType, "score of %q has wrong type %s, want number", text, jsonTypeName(s))
			}
			out = append(out, Similar{Text: text, Score: score})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Score != out[j].Score {
				return out[i].Score > out[j].Score
			}
			return out[i].Text < out[j].Text
		})
		return out, nil
	case []any:
		out := make([]Similar, 0, len(v))
		for i, item := range v {
			m, ok := item.(map[string]any)
			text, tok := m["text"].(string)
			score, sok := m["score"].(float64)
			if !ok || !tok || !sok {
				return nil, rowProblem(col, ReasonWrongType, "item %d: want an object with text and a numeric score", i+1)
			}
			out = append(out, Similar{Text: text, Score: score})
		}
		return out, nil
	default:
		return nil, rowProblem(col, ReasonWrongType, "wrong type %s, want a list of {text, score}", jsonTypeName(v))
	}
}

// ---- preferences --------------------------------------------------------------

// scores reads the optional numeric columns of a preference row.
func (f fields) scores(p *Preference) *reasonError {
	for _, s := range []struct {
		col string
		dst **float64
	}{{ColMargin, &p.Margin}, {ColScoreChosen, &p.ScoreChosen}, {ColScoreRejected, &p.ScoreRejected},
		{ColRefChosenLogps, &p.RefChosenLogp}, {ColRefRejectedLogps, &p.RefRejectedLogp}} {
		v, err := f.number(s.col)
		if err != nil {
			return err
		}
		*s.dst = v
	}
	return nil
}

func convertTRLStandard(f fields) (Preference, *reasonError) {
	var p Preference
	var err *reasonError
	if p.Prompt, err = f.text(ColPrompt, true); err != nil {
		return p, err
	}
	if p.Chosen, err = f.text(ColChosen, true); err != nil {
		return p, err
	}
	if p.Rejected, err = f.text(ColRejected, true); err != nil {
		return p, err
	}
	if p.Chosen == p.Rejected {
		return p, rowProblem(ColRejected, ReasonIdentical, "")
	}
	return p, f.scores(&p)
}

// convertTRLImplicit splits chosen and rejected at their longest common
// prefix, as TRL's extract_prompt does: the prefix is the prompt, and a
// space just before the first difference stays with the answers.
func convertTRLImplicit(f fields) (Preference, *reasonError) {
	var p Preference
	chosen, err := f.text(ColChosen, true)
	if err != nil {
		return p, err
	}
	rejected, err := f.text(ColRejected, true)
	if err != nil {
		return p, err
	}
	if chosen == rejected {
		return p, rowProblem(ColRejected, ReasonIdentical, "")
	}
	k := commonPrefix(chosen, rejected)
	if k > 0 && chosen[k-1] == ' ' {
		k--
	}
	p.Prompt, p.Chosen, p.Rejected = chosen[:k], chosen[k:], rejected[k:]
	if strings.TrimSpace(p.Prompt) == "" {
		return p, rowProblem(ColPrompt, ReasonNoPrompt, "chosen and rejected share no prefix to use as the prompt")
	}
	if strings.TrimSpace(p.Chosen) == "" {
		return p, rowProblem(ColChosen, ReasonEmpty, "empty text after the shared prompt")
	}
	if strings.TrimSpace(p.Rejected) == "" {
		return p, rowProblem(ColRejected, ReasonEmpty, "empty text after the shared prompt")
	}
	return p, f.scores(&p)
}

// commonPrefix returns the length in bytes of the longest common prefix of
// a and b that ends on a rune boundary.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	k := 0
	for k < n && a[k] == b[k] {
		k++
	}
	for k > 0 && k < len(a) && !utf8.RuneStart(a[k]) {
		k--
	}
	return k
}

// convertConversational reads chosen and rejected message lists. Messages
// they share at the start are the prompt (the implicit-prompt form of TRL,
// and UltraFeedback-binarized, whose lists repeat the user turn); when they
// share none, the prompt column supplies it, as messages or as the text of
// one user turn.
func convertConversational(f fields) (Preference, *reasonError) {
	var p Preference
	chosen, err := f.messages(ColChosen)
	if err != nil {
		return p, err
	}
	rejected, err := f.messages(ColRejected)
	if err != nil {
		return p, err
	}
	if sameMessages(chosen, rejected) {
		return p, rowProblem(ColRejected, ReasonIdentical, "")
	}
	k := 0
	for k < len(chosen) && k < len(rejected) && chosen[k] == rejected[k] {
		k++
	}
	switch {
	case k > 0:
		p.PromptMessages = chosen[:k]
	case f.isList(ColPrompt):
		if p.PromptMessages, err = f.messages(ColPrompt); err != nil {
			return p, err
		}
	case f.has(ColPrompt):
		text, err := f.text(ColPrompt, true)
		if err != nil {
			return p, err
		}
		p.PromptMessages = []Message{{Role: "user", Content: text}}
	default:
		return p, rowProblem(ColPrompt, ReasonNoPrompt, "missing, and chosen and rejected share no messages to use as the prompt")
	}
	p.ChosenMessages, p.RejectedMessages = chosen[k:], rejected[k:]
	if blankMessages(p.ChosenMessages) {
		return p, rowProblem(ColChosen, ReasonEmpty, "no answer after the shared prompt messages")
	}
	if blankMessages(p.RejectedMessages) {
		return p, rowProblem(ColRejected, ReasonEmpty, "no answer after the shared prompt messages")
	}
	return p, f.scores(&p)
}

func sameMessages(a, b []Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func blankMessages(msgs []Message) bool {
	for _, m := range msgs {
		if strings.TrimSpace(m.Content) != "" {
			return false
		}
	}
	return true
}

// hh-rlhf speaker markers. Every turn of a transcript starts with one of
// them after a blank line; paragraphs without one continue the turn before.
const (
	hhHuman     = "\n\nHuman:"
	hhAssistant = "\n\nAssistant:"
)

// looksLikeTranscript reports whether s is an hh-rlhf transcript.
func looksLikeTranscript(s string) bool {
	t := strings.TrimLeft(s, " \n")
	return strings.HasPrefix(t, "Human:") && strings.Contains(s, hhAssistant)
}

// parseTranscript splits an hh-rlhf transcript into messages, trimming the
// space around each turn's text, as TRL's hh-rlhf script does.
func parseTranscript(s string) ([]Message, bool) {
	s = "\n\n" + strings.TrimLeft(s, " \n")
	var msgs []Message
	for len(s) > 0 {
		var role string
		switch {
		case strings.HasPrefix(s, hhHuman):
			role, s = "user", s[len(hhHuman):]
		case strings.HasPrefix(s, hhAssistant):
			role, s = "assistant", s[len(hhAssistant):]
		default:
			return nil, false
		}
		end := len(s)
		if i := strings.Index(s, hhHuman); i >= 0 {
			end = i
		}
		if i := strings.Index(s, hhAssistant); i >= 0 && i < end {
			end = i
		}
		msgs = append(msgs, Message{Role: role, Content: strings.TrimSpace(s[:end])})
		s = s[end:]
	}
	return msgs, true
}

// splitTranscript parses the transcript in column col and splits it before
// its last Assistant turn.
func splitTranscript(f fields, col string) (prompt []Message, answer Message, err *reasonError) {
	text, err := f.text(col, true)
	if err != nil {
		return nil, answer, err
	}
	msgs, ok := parseTranscript(text)
	if !ok {
		return nil, answer, rowProblem(col, ReasonBadTranscript, `not a "\n\nHuman: … \n\nAssistant: …" transcript`)
	}
	last := len(msgs) - 1
	if msgs[last].Role != "assistant" {
		return nil, answer, rowProblem(col, ReasonBadTranscript, "transcript does not end with an Assistant turn")
	}
	if last == 0 {
		return nil, answer, rowProblem(col, ReasonBadTranscript, "transcript has no Human turn before its last Assistant turn")
	}
	if strings.TrimSpace(msgs[last].Content) == "" {
		return nil, answer, rowProblem(col, ReasonEmpty, "empty last Assistant turn")
	}
	return msgs[:last], msgs[last], nil
}

func convertHHRLHF(f fields) (Preference, *reasonError) {
	var p Preference
	prompt, chosen, err := splitTranscript(f, ColChosen)
	if err != nil {
		return p, err
	}
	rprompt, rejected, err := splitTranscript(f, ColRejected)
	if err != nil {
		return p, err
	}
	if !sameMessages(prompt, rprompt) {
		return p, rowProblem(ColRejected, ReasonPromptMismatch, "the turns before the last Assistant turn differ from chosen's")
	}
	if chosen == rejected {
		return p, rowProblem(ColRejected, ReasonIdentical, "")
	}
	p.PromptMessages, p.ChosenMessages, p.RejectedMessages = prompt, []Message{chosen}, []Message{rejected}
	return p, f.scores(&p)
}

// ---- conversations ------------------------------------------------------------

// shareGPTRoles maps ShareGPT's speakers onto chat roles.
var shareGPTRoles = map[string]string{
	"human": RoleUser, "user": RoleUser, "gpt": RoleAssistant, "assistant": RoleAssistant, "system": RoleSystem,
}

// convertMessages reads a TRL conversational SFT row.
func convertMessages(f fields) (Instruction, *reasonError) {
	msgs, err := f.messages(ColMessages)
	if err != nil {
		return Instruction{}, err
	}
	if err := checkConversation(ColMessages, msgs, "role"); err != nil {
		return Instruction{}, err
	}
	src, err := f.text(ColSource, false)
	return Instruction{Messages: msgs, Source: src}, err
}

// convertShareGPT reads a ShareGPT row: conversations of {from, value}.
func convertShareGPT(f fields) (Instruction, *reasonError) {
	const col = ColConversations
	v, ok := f.m[col]
	switch {
	case !ok:
		return Instruction{}, rowProblem(col, ReasonMissing, "")
	case v == nil:
		return Instruction{}, rowProblem(col, ReasonNull, "null, want a list of turns")
	}
	list, ok := v.([]any)
	if !ok {
		return Instruction{}, rowProblem(col, ReasonWrongType, "wrong type %s, want a list of turns", jsonTypeName(v))
	}
	if len(list) == 0 {
		return Instruction{}, rowProblem(col, ReasonEmpty, "empty list of turns")
	}
	msgs := make([]Message, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return Instruction{}, rowProblem(col, ReasonBadMessages, "turn %d: wrong type %s, want an object with from and value", i+1, jsonTypeName(item))
		}
		from, ok := m["from"].(string)
		if !ok {
			return Instruction{}, rowProblem(col, ReasonBadMessages, "turn %d: from missing or not text", i+1)
		}
		role, known := shareGPTRoles[from]
		if !known {
			return Instruction{}, rowProblem(col, ReasonBadMessages, "turn %d: unknown from %q (want human, gpt or system)", i+1, from)
		}
		value, ok := m["value"].(string)
		if !ok {
			return Instruction{}, rowProblem(col, ReasonBadMessages, "turn %d: value missing or not text", i+1)
		}
		if !utf8.ValidString(value) {
			return Instruction{}, rowProblem(col, ReasonInvalidUTF8, "turn %d: invalid UTF-8", i+1)
		}
		msgs[i] = Message{Role: role, Content: value}
	}
	if err := checkConversation(col, msgs, "from"); err != nil {
		return Instruction{}, err
	}
	src, err := f.text(ColSource, false)
	return Instruction{Messages: msgs, Source: src}, err
}

// checkConversation applies the rules every SFT conversation follows, as
// TRL's SFTTrainer expects them: roles system, user and assistant only, a
// system turn only first, no empty turn, at least one user turn, and the
// last turn the assistant's (whose reply the model learns). Whether user
// and assistant must alternate is the chat template's rule: templates that
// require it raise their own error when the row is rendered.
func checkConversation(col string, msgs []Message, roleKey string) *reasonError {
	users := 0
	for i, m := range msgs {
		switch m.Role {
		case RoleSystem:
			if i > 0 {
				return rowProblem(col, ReasonBadMessages, "message %d: a system turn may only come first", i+1)
			}
		case RoleUser:
			users++
		case RoleAssistant:
		default:
			return rowProblem(col, ReasonBadMessages, "message %d: unknown %s %q (want system, user or assistant)", i+1, roleKey, m.Role)
		}
		if strings.TrimSpace(m.Content) == "" {
			return rowProblem(col, ReasonEmpty, "message %d (%s): empty content", i+1, m.Role)
		}
	}
	if users == 0 {
		return rowProblem(col, ReasonBadMessages, "no user turn")
	}
	if last := msgs[len(msgs)-1]; last.Role != RoleAssistant {
		return rowProblem(col, ReasonBadMessages, "the conversation ends with a %s turn, not an assistant turn", last.Role)
	}
	return nil
}

// ---- prompts --------------------------------------------------------------------

func convertPrompt(f fields) (Prompt, *reasonError) {
	text, err := f.text(ColPrompt, true)
	return Prompt{Prompt: text}, err
}

func convertPromptConversational(f fields) (Prompt, *reasonError) {
	msgs, err := f.messages(ColPrompt)
	return Prompt{Messages: msgs}, err
}

// ---- detection ------------------------------------------------------------------

// detectShape picks the shape of an input from its columns and, where the
// columns leave it open, from the values of its first rows.
func detectShape(kind Kind, cols map[string]bool, first func(col string) any) (string, error) {
	has := func(c string) bool { return cols[c] }
	if kind == "" {
		switch {
		case has(ColChosen) || has(ColRejected):
			kind = KindPreferences
		case has(ColInstruction) && (has(ColMostSimilar) || has(ColAvgSimilarity)):
			kind = KindGeneratedInstructions
		case has(ColInstruction) || has(ColOutput) || has(ColMessages) || has(ColConversations):
			kind = KindInstructions
		case has(ColPrompt):
			kind = KindPrompts
		default:
			return "", errNoKind
		}
	}
	switch kind {
	case KindInstructions:
		switch {
		case has(ColMessages) && !has(ColInstruction):
			return ShapeMessages, nil
		case has(ColConversations) && !has(ColInstruction):
			return ShapeShareGPT, nil
		}
		return ShapeAlpaca, nil
	case KindGeneratedInstructions:
		return ShapeSelfInstruct, nil
	case KindPrompts:
		if _, ok := first(ColPrompt).([]any); ok {
			return ShapePromptsConversational, nil
		}
		return ShapePrompts, nil
	}
	// Preferences.
	if _, ok := first(ColChosen).([]any); ok {
		switch {
		case has(ColScoreChosen) || has(ColScoreRejected):
			return ShapeUltraFeedback, nil
		case has(ColPrompt):
			return ShapeTRLConversational, nil
		}
		return ShapeTRLConversationalImplicit, nil
	}
	if has(ColPrompt) {
		return ShapeTRLStandard, nil
	}
	if s, ok := first(ColChosen).(string); ok && looksLikeTranscript(s) {
		return ShapeHHRLHF, nil
	}
	return ShapeTRLImplicit, nil
}

// errNoKind reports columns that fit no kind; Import adds the file and columns.
var errNoKind = rowProblem("", "", "no dataset kind fits these columns")
