package selfinstruct

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gotune/gotune/data"
)

// GeneratedTask is one task the teacher wrote.
type GeneratedTask struct {
	Instruction, Input, Output string
}

// Rejection reasons, as counted in the progress line and the report.
const (
	ReasonMalformed = "malformed"   // not an "N. Instruction / N. Input / N. Output" block
	ReasonTruncated = "truncated"   // the last block of a reply cut off by max_tokens
	ReasonTooShort  = "too_short"   // 3 words or fewer
	ReasonTooLong   = "too_long"    // more than 150 words
	ReasonBlocklist = "blocklist"   // names something a text model cannot do (image, file, …)
	ReasonProgram   = "program"     // starts with "Write a program"
	ReasonPunct     = "punctuation" // starts with ASCII punctuation
	ReasonNonASCII  = "non_ascii"   // starts with a non-ASCII character
	ReasonSimilar   = "similar"     // ROUGE-L above the threshold against a kept instruction
	ReasonDuplicate = "duplicate"   // the instruction and input of a seed or kept task
	ReasonVerifier  = "verifier"    // the verifier hook refused it
	// ReasonUnverifiable: the verifier could not check it, and
	// Config.RequireVerified keeps only checked tasks.
	ReasonUnverifiable = "unverifiable"
)

// NoInput is how the prompt writes an empty input.
const NoInput = data.NoInput

// EncodePrompt builds a generation prompt as Alpaca's encode_prompt does:
// the header, then each example task as a data.TaskBlock numbered from 1,
// and finally "###\n{k+1}. Instruction:" for the teacher to continue.
func EncodePrompt(header string, examples []GeneratedTask) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n")
	for i, t := range examples {
		b.WriteString(data.TaskBlock(i+1, t.Instruction, t.Input, t.Output))
	}
	fmt.Fprintf(&b, "###\n%d. Instruction:", len(examples)+1)
	return b.String()
}

// blockPattern splits block n on "n. Instruction:", "n. Input:" and
// "n. Output:". Like Alpaca's pattern it is not anchored, so "14. Input:"
// also matches for n = 4.
func blockPattern(n int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`%d\.\s+(Instruction|Input|Output):`, n))
}

// ParseResponse extracts the tasks of a teacher's reply to a prompt that
// showed numExamples tasks, following Alpaca's post_process_gpt3_response:
// the reply continues "{numExamples+1}. Instruction:", blocks are separated
// by "###", block i must split on "{numExamples+1+i}. Instruction|Input|
// Output:" into exactly three fields, and when the reply stopped at the
// token limit its last block is dropped as truncated. Blocks that do not
// parse are counted under ReasonMalformed / ReasonTruncated in rejected.
func ParseResponse(numExamples int, reply string, truncated bool, rejected map[string]int) []GeneratedTask {
	raw := fmt.Sprintf("%d. Instruction:", numExamples+1) + reply
	blocks := strings.Split(raw, "###")
	var out []GeneratedTask
	for i, block := range blocks {
		if i == len(blocks)-1 && truncated {
			rejected[ReasonTruncated]++
			continue
		}
		parts := splitFields(blockPattern(numExamples+1+i), block)
		if len(parts) != 7 {
			if strings.TrimSpace(block) != "" {
				rejected[ReasonMalformed]++
			}
			continue
		}
		t := GeneratedTask{
			Instruction: strings.TrimSpace(parts[2]),
			Input:       strings.TrimSpace(parts[4]),
			Output:      strings.TrimSpace(parts[6]),
		}
		if strings.EqualFold(t.Input, NoInput) {
			t.Input = ""
		}
		out = append(out, t)
	}
	return out
}

// splitFields is Python's re.split with one capturing group: the text
// between matches interleaved with the group's captures.
func splitFields(re *regexp.Regexp, s string) []string {
	var out []string
	last := 0
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		out = append(out, s[last:m[0]], s[m[2]:m[3]])
		last = m[1]
	}
	return append(out, s[last:])
}
