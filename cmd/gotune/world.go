package main

import "fmt"

// The built-in world is the training commands' default dataset: without
// --data (--prompts for ppo, --corpus for pretrain) a command draws its rows
// from the world's Train split and its held-out rows from its Valid split.
// The stages themselves only take datasets and rows; these flags, with the
// world's rows converted by their Rows method, are how the CLI makes the
// default ones.
const (
	keyWorldSeed      = "world-seed"
	keyWorldRows      = "world-rows"
	keyWorldPairs     = "world-pairs"
	keyWorldEvalPairs = "world-eval-pairs"
	keyWorldPrompts   = "world-prompts"
	keyWorldDocs      = "world-docs"

	defaultWorldSeed = 1
)

// worldCount reads the number of world rows a command draws without a
// dataset (flag key of section s), which must be positive.
func worldCount(s, key, datasetKey string) (int, error) {
	n := cfgInt(s, key)
	if n <= 0 {
		return 0, fmt.Errorf("%s: %s must be positive when %s is not given, got %d", s, key, datasetKey, n)
	}
	return n, nil
}
