package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// resetFlags puts every flag of cmd back to its default, now and when the
// test ends: the commands are package variables, so a flag one test sets
// would otherwise leak into the next.
func resetFlags(t *testing.T, cmd *cobra.Command) {
	t.Helper()
	reset := func() {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				var def []string
				if d := strings.Trim(f.DefValue, "[]"); d != "" {
					def = strings.Split(d, ",")
				}
				if err := sv.Replace(def); err != nil {
					t.Errorf("reset --%s: %v", f.Name, err)
				}
			} else if err := f.Value.Set(f.DefValue); err != nil {
				t.Errorf("reset --%s: %v", f.Name, err)
			}
			f.Changed = false
		})
	}
	reset()
	t.Cleanup(reset)
}
