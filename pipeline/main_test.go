//go:build linux

package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// childEnv names the environment variable that turns the test binary into a
// pipeline process (see runChild): the reliability tests start the binary
// again with it set, so that they can kill a real process mid-stage.
const childEnv = "GOTUNE_PIPELINE_CHILD"

// childSpec is what a child process runs: the default pipeline (or its
// first Stages stages) in Run with the base model in Base.
type childSpec struct {
	Run, Base string
	Sizes     Sizes
	Stages    int    // run only this many leading stages; 0 for all
	FileLimit uint64 // RLIMIT_FSIZE in bytes for the process; 0 leaves it
}

// Exit codes of a child: those of the gotune command (cmd/gotune/main.go).
const (
	exitOK          = 0
	exitFailed      = 1
	exitInterrupted = 130
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild runs the pipeline the way `gotune pipeline` does: SIGINT and
// SIGTERM cancel the context, so the running stage writes a checkpoint and
// returns, and an interrupted run exits with 130.
func runChild(raw string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "child: bad %s: %v\n", childEnv, err)
		return exitFailed
	}
	if spec.FileLimit > 0 {
		// The Go runtime ignores SIGXFSZ, so a write past the limit fails
		// with EFBIG: a full disk that also stops root.
		lim := syscall.Rlimit{Cur: spec.FileLimit, Max: spec.FileLimit}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "child: setrlimit: %v\n", err)
			return exitFailed
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &Default{RunDir: spec.Run, BaseDir: spec.Base, Sizes: spec.Sizes, Quiet: true, Log: os.Stdout}
	stages := d.Stages()
	if spec.Stages > 0 {
		stages = stages[:spec.Stages]
	}
	r := &Runner{RunDir: spec.Run, Log: os.Stdout}
	if _, err := r.Run(ctx, stages); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		if errors.Is(err, context.Canceled) {
			return exitInterrupted
		}
		return exitFailed
	}
	return exitOK
}
