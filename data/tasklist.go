package data

import (
	"fmt"
	"regexp"
	"strings"
)

// NoInput is how a task list writes an empty input, as Stanford Alpaca's
// self-instruct prompts do.
const NoInput = "<noinput>"

// TaskBlock renders task n of a numbered task list in the format of
// Stanford Alpaca's self-instruct prompts (generate_instruction.py), the
// block opened by its "###" separator:
//
//	###
//	N. Instruction: …   (one line: white space runs made one space, trailing colons dropped)
//	N. Input:
//	…                   (NoInput when empty)
//	N. Output:
//	…
func TaskBlock(n int, instruction, input, output string) string {
	if input == "" {
		input = NoInput
	}
	return fmt.Sprintf("###\n%d. Instruction: %s\n%d. Input:\n%s\n%d. Output:\n%s\n", n, OneLine(instruction), n, input, n, output)
}

// OneLine is an instruction as a task list shows it: runs of white space
// made one space, trailing colons dropped.
func OneLine(instruction string) string {
	return strings.TrimRight(strings.TrimSpace(spaceRuns.ReplaceAllString(instruction, " ")), ":")
}

var spaceRuns = regexp.MustCompile(`\s+`)
