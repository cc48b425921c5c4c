package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/internal/mpi"
)

// noReexecEnv, when set, keeps gotune from restarting itself for the BLAS
// settings; the restarted process has it set.
const noReexecEnv = "GOTUNE_NO_REEXEC"

// reexecForKernels restarts the process with the environment settings that
// the BLAS library reads only when it is loaded (blas.PreferredEnv), so that
// `gotune` gets the fast kernels without the user setting them. It returns
// only when there is nothing to change or the restart failed; a failure is
// not an error, the command then runs on the kernels already loaded.
func reexecForKernels() {
	env := blas.PreferredEnv()
	if len(env) == 0 || os.Getenv(noReexecEnv) != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	// noReexecEnv guards against a loop should the library ignore the
	// settings.
	_ = syscall.Exec(exe, os.Args, append(os.Environ(), append(env, noReexecEnv+"=1")...))
}

var envCmd = &cobra.Command{
	Use:   "env",
	Short: "Print the build and machine facts that decide gotune's speed (BLAS backend and kernels, cores, MPI ranks)",
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "go:          %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		fmt.Fprintf(out, "cores:       %d (GOMAXPROCS)\n", runtime.GOMAXPROCS(0))
		fmt.Fprintf(out, "blas:        %s\n", blas.Backend())
		fmt.Fprintf(out, "kernels:     %s\n", blas.Kernel())
		if a := blas.Advice(); a != "" {
			fmt.Fprintf(out, "advice:      %s\n", a)
		}
		fmt.Fprintf(out, "mpi:         %s\n", mpiLine())
		for _, v := range []string{blas.GemmEnv, "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS"} {
			if s := os.Getenv(v); s != "" {
				fmt.Fprintf(out, "%s=%s\n", v, s)
			}
		}
		return nil
	},
}

func init() { rootCmd.AddCommand(envCmd) }

// mpiLine says whether MPI is built in and how many ranks run.
func mpiLine() string {
	w := mpi.World()
	switch {
	case !mpi.BuiltIn():
		return "not built in (build with -tags mpi); 1 rank"
	case w.MPI():
		return fmt.Sprintf("built in; %d ranks (this is rank %d)", w.Size(), w.Rank())
	default:
		return "built in; 1 rank (not started by mpirun)"
	}
}
