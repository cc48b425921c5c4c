package world

// FormatAlpaca renders an instruction and input with the Stanford Alpaca
// prompt template (PROMPT_DICT in tatsu-lab/stanford_alpaca's train.py, byte
// for byte), choosing the no-input variant when input is empty, as train.py
// does. A solved example is this prompt followed directly by the output, as
// train.py concatenates source and target. The texts are inserted verbatim:
// braces in them are not placeholders.
func FormatAlpaca(instruction, input string) string {
	if input == "" {
		return "Below is an instruction that describes a task. " +
			"Write a response that appropriately completes the request.\n\n" +
			"### Instruction:\n" + instruction + "\n\n### Response:"
	}
	return "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n" + instruction + "\n\n### Input:\n" + input + "\n\n### Response:"
}
