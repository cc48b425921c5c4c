package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/internal/mpi"
)

// dataParallel are the commands that may run on several MPI ranks: the
// stages whose training loop shares each update's micro-batches among the
// ranks (train.Comm), those whose sampling and scoring share their prompts
// (train.ShareWork: ppo, grpo, eval, self-instruct), and env.
var dataParallel = map[*cobra.Command]bool{}

func init() {
	for _, c := range []*cobra.Command{sftCmd, dpoCmd, rewardCmd, pretrainCmd, ppoCmd, grpoCmd, evalCmd, selfInstructCmd, envCmd} {
		dataParallel[c] = true
	}
}

// checkRanks refuses, before it writes anything, a command started by
// mpirun on several ranks that would only repeat its work on each.
func checkRanks(cmd *cobra.Command) error {
	if w := mpi.World(); w.Size() > 1 && !dataParallel[cmd] {
		return fmt.Errorf("gotune %s does not run data-parallel (sft, dpo, reward, pretrain, ppo, grpo, eval and self-instruct do); start it without mpirun, not on %d ranks", cmd.Name(), w.Size())
	}
	return nil
}
