package data

import (
	"fmt"
	"strconv"
	"strings"
)

// RowError is a problem with one input row. Its message names the file,
// the row (1-based; in JSONL files the line number) and, when one column is
// at fault, the column:
//
//	prefs.jsonl: row 17, column "chosen": empty text
type RowError struct {
	File   string
	Row    int
	Column string // "" when the row as a whole is at fault
	Reason string
}

// Error formats the problem as `file: row N, column "c": reason`.
func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("%s: row %d: %s", e.File, e.Row, e.Reason)
	}
	return fmt.Sprintf("%s: row %d, column %s: %s", e.File, e.Row, strconv.Quote(e.Column), e.Reason)
}

// Validation reasons, also the keys of ImportReport.Reasons.
const (
	ReasonMissing        = "missing"
	ReasonNull           = "null"
	ReasonEmpty          = "empty text"
	ReasonIdentical      = "identical to chosen"
	ReasonInvalidUTF8    = "invalid UTF-8"
	ReasonTooLarge       = "row too large"
	ReasonInvalidJSON    = "invalid JSON"
	ReasonNotObject      = "not a JSON object"
	ReasonWrongType      = "wrong type"
	ReasonFieldCount     = "wrong number of fields"
	ReasonInvalidCSV     = "invalid CSV"
	ReasonNotFinite      = "not a finite number"
	ReasonBadMessages    = "bad messages"
	ReasonBadTranscript  = "bad transcript"
	ReasonPromptMismatch = "prompt mismatch"
	ReasonNoPrompt       = "no prompt"
)

// reasonError is a row problem before the file and row are known: the
// column, the reason class (one of the Reason* constants) and the message.
type reasonError struct {
	column string
	class  string
	msg    string
}

func (e *reasonError) Error() string { return e.msg }

func rowProblem(column, class, format string, args ...any) *reasonError {
	msg := class
	if format != "" {
		msg = fmt.Sprintf(format, args...)
	}
	return &reasonError{column: column, class: class, msg: msg}
}

type unknownNameError struct {
	what, name string
	known      []string
}

func (e *unknownNameError) Error() string {
	return fmt.Sprintf("unknown %s %q (known: %s)", e.what, e.name, strings.Join(e.known, ", "))
}
