package main

import (
	"fmt"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
)

// The built-in world is the training commands' default dataset: without
// --data (--prompts for ppo, --corpus for pretrain) a command draws its rows
// from the world's Train split and its held-out rows from its Valid split.
// The stages themselves only take datasets and rows; these flags and the
// functions below are how the CLI makes the default ones.
const (
	keyWorldSeed      = "world-seed"
	keyWorldRows      = "world-rows"
	keyWorldPairs     = "world-pairs"
	keyWorldEvalPairs = "world-eval-pairs"
	keyWorldPrompts   = "world-prompts"
	keyWorldDocs      = "world-docs"

	defaultWorldSeed = 1
)

// worldInstructions converts n instruction rows of a split of the world.
func worldInstructions(w *world.World, split world.Split, n int) []data.Instruction {
	rows := w.Instructions(split, n)
	out := make([]data.Instruction, len(rows))
	for i, r := range rows {
		out[i] = data.Instruction{Instruction: r.Instruction, Input: r.Input, Output: r.Output}
	}
	return out
}

// worldPreferences converts n preference pairs of a split of the world.
func worldPreferences(w *world.World, split world.Split, n int) []data.Preference {
	rows := w.Preferences(split, n)
	out := make([]data.Preference, len(rows))
	for i, r := range rows {
		out[i] = data.Preference{Prompt: r.Prompt, Chosen: r.Chosen, Rejected: r.Rejected}
	}
	return out
}

// worldPrompts converts n prompts of a split of the world.
func worldPrompts(w *world.World, split world.Split, n int) []data.Prompt {
	rows := w.Prompts(split, n)
	out := make([]data.Prompt, len(rows))
	for i, r := range rows {
		out[i] = data.Prompt{Prompt: r.Prompt}
	}
	return out
}

// worldCount reads the number of world rows a command draws without a
// dataset (flag key of section s), which must be positive.
func worldCount(s, key, datasetKey string) (int, error) {
	n := cfgInt(s, key)
	if n <= 0 {
		return 0, fmt.Errorf("%s: %s must be positive when %s is not given, got %d", s, key, datasetKey, n)
	}
	return n, nil
}
