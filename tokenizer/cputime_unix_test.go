//go:build unix

package tokenizer

import (
	"syscall"
	"time"
)

// cpuTime is the processor time (user and system) this process has used,
// so that benchmarks can report speed per CPU-second on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
