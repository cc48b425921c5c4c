package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// cfg holds the resolved configuration: flags over environment over file.
var cfg = viper.New()

// knownKeys records every key a command registered with bindFlags; the
// config file may only use these.
var knownKeys = map[string]bool{}

// bindFlags makes every local flag of cmd readable as the viper key
// "<section>.<flag_name_with_underscores>", settable in the --config YAML
// under that section and by the environment variable GOTUNE_<SECTION>_<FLAG>.
func bindFlags(cmd *cobra.Command, section string) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		key := configKey(section, f.Name)
		knownKeys[key] = true
		if err := cfg.BindPFlag(key, f); err != nil {
			panic(fmt.Sprintf("bind flag %s: %v", key, err))
		}
		env := "GOTUNE_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
		if err := cfg.BindEnv(key, env); err != nil {
			panic(fmt.Sprintf("bind env %s: %v", env, err))
		}
	})
}

func configKey(section, flag string) string {
	return section + "." + strings.ReplaceAll(flag, "-", "_")
}

// loadConfig reads the --config file, if any, and rejects keys that no
// command knows, naming them.
func loadConfig(cmd *cobra.Command) error {
	path, _ := cmd.Flags().GetString(rootKeyConfig)
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	fileCfg := viper.New()
	fileCfg.SetConfigType("yaml")
	if err := fileCfg.ReadConfig(f); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var unknown []string
	for _, k := range fileCfg.AllKeys() {
		if !knownKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config %s: unknown key %s", path, strings.Join(unknown, ", "))
	}
	return cfg.MergeConfigMap(fileCfg.AllSettings())
}

func cfgString(section, flag string) string { return cfg.GetString(configKey(section, flag)) }
func cfgInt(section, flag string) int       { return cfg.GetInt(configKey(section, flag)) }
func cfgFloat(section, flag string) float64 { return cfg.GetFloat64(configKey(section, flag)) }
func cfgBool(section, flag string) bool     { return cfg.GetBool(configKey(section, flag)) }
func cfgStringSlice(section, flag string) []string {
	return cfg.GetStringSlice(configKey(section, flag))
}
