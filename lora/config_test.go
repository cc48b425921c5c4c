package lora

import (
	"math"
	"regexp"
	"testing"
)

// TestValidate checks that each invalid setting is reported naming its
// key, and that New refuses it too.
func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	ok.Init = ""
	if err := ok.Validate(); err != nil {
		t.Errorf("init \"\" (kaiming): %v", err)
	}
	for _, c := range []struct {
		key  string
		edit func(*Config)
	}{
		{KeyR, func(c *Config) { c.R = 0 }},
		{KeyR, func(c *Config) { c.R = -4 }},
		{KeyAlpha, func(c *Config) { c.Alpha = 0 }},
		{KeyAlpha, func(c *Config) { c.Alpha = -16 }},
		{KeyAlpha, func(c *Config) { c.Alpha = math.NaN() }},
		{KeyDropout, func(c *Config) { c.Dropout = 1 }},
		{KeyDropout, func(c *Config) { c.Dropout = -0.1 }},
		{KeyTargets, func(c *Config) { c.Targets = nil }},
		{KeyTargets, func(c *Config) { c.Targets = []string{"qkv"} }},
		{KeyInit, func(c *Config) { c.Init = "xavier" }},
	} {
		cfg := DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !regexp.MustCompile(`(^|[\s:])`+regexp.QuoteMeta(c.key)+`($|[\s:])`).MatchString(err.Error()) {
			t.Errorf("%s: got %v, want an error naming it", c.key, err)
			continue
		}
		if _, newErr := New(nil, cfg); newErr == nil || newErr.Error() != err.Error() {
			t.Errorf("%s: New gave %v, want %v", c.key, newErr, err)
		}
	}
}
