package serve

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The OpenAI API's request and response bodies, the subset the server
// implements. Unknown request fields are ignored, as OpenAI-compatible
// servers commonly do, so that standard clients work unchanged.

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// messageIn accepts content as a string or as a list of text parts.
type messageIn struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func (m messageIn) text() (string, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", errors.New("content must be a string or a list of text parts")
	}
	out := ""
	for i, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part %d has type %q; only text is supported", i, p.Type)
		}
		out += p.Text
	}
	return out, nil
}

// samplingFields are shared by both endpoints.
type samplingFields struct {
	Model            string          `json:"model"`
	MaxTokens        *int            `json:"max_tokens"`
	Temperature      *float64        `json:"temperature"`
	TopP             *float64        `json:"top_p"`
	N                *int            `json:"n"`
	Stream           bool            `json:"stream"`
	Stop             json.RawMessage `json:"stop"`
	Seed             *int64          `json:"seed"`
	PresencePenalty  float64         `json:"presence_penalty"`
	FrequencyPenalty float64         `json:"frequency_penalty"`
	StreamOptions    *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	// Extensions many OpenAI-compatible servers accept.
	TopK              *int     `json:"top_k"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
}

type completionRequest struct {
	samplingFields
	Prompt   json.RawMessage `json:"prompt"`
	Echo     bool            `json:"echo"`
	BestOf   *int            `json:"best_of"`
	Suffix   *string         `json:"suffix"`
	LogProbs *int            `json:"logprobs"`
}

type chatRequest struct {
	samplingFields
	Messages            []messageIn `json:"messages"`
	MaxCompletionTokens *int        `json:"max_completion_tokens"`
	LogProbs            bool        `json:"logprobs"`
}

// stops parses `stop`: null, a string, or a list of up to 4 strings.
func (f *samplingFields) stops() ([]string, error) {
	if len(f.Stop) == 0 || string(f.Stop) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(f.Stop, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(f.Stop, &many); err != nil {
		return nil, errors.New("stop must be a string or a list of strings")
	}
	if len(many) > 4 {
		return nil, fmt.Errorf("stop has %d strings, at most 4 are allowed", len(many))
	}
	out := many[:0]
	for _, s := range many {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// prompts parses a completion `prompt`: a string, a list of strings, a list
// of token ids, or a list of lists of token ids. Exactly one of the results
// is non-nil.
func (r *completionRequest) prompts() (texts []string, ids [][]int, err error) {
	if len(r.Prompt) == 0 || string(r.Prompt) == "null" {
		return nil, nil, errors.New("prompt is required")
	}
	var s string
	if json.Unmarshal(r.Prompt, &s) == nil {
		return []string{s}, nil, nil
	}
	var ss []string
	if json.Unmarshal(r.Prompt, &ss) == nil {
		if len(ss) == 0 {
			return nil, nil, errors.New("prompt is an empty list")
		}
		return ss, nil, nil
	}
	var one []int
	if json.Unmarshal(r.Prompt, &one) == nil {
		if len(one) == 0 {
			return nil, nil, errors.New("prompt is an empty list")
		}
		return nil, [][]int{one}, nil
	}
	var many [][]int
	if json.Unmarshal(r.Prompt, &many) == nil {
		if len(many) == 0 {
			return nil, nil, errors.New("prompt is an empty list")
		}
		return nil, many, nil
	}
	return nil, nil, errors.New("prompt must be a string, a list of strings, or token ids")
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	LogProbs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int      `json:"index"`
	Message      *Message `json:"message,omitempty"`
	Delta        *delta   `json:"delta,omitempty"`
	LogProbs     any      `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

type modelCard struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// apiError is OpenAI's error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}
