package lora

import (
	"math"
	"testing"

	"github.com/gotune/gotune/internal/configtest"
)

// TestValidate checks that each invalid setting is reported naming its
// key, and that New refuses it too.
func TestValidate(t *testing.T) {
	kaiming := DefaultConfig()
	kaiming.Init = ""
	if err := kaiming.Validate(); err != nil {
		t.Errorf("init \"\" (kaiming): %v", err)
	}
	newErr := func(c Config) error {
		_, err := New(nil, c)
		return err
	}
	configtest.Check(t, DefaultConfig(), Config.Validate, newErr, []configtest.Case[Config]{
		{Key: KeyR, Edit: func(c *Config) { c.R = 0 }},
		{Key: KeyR, Edit: func(c *Config) { c.R = -4 }},
		{Key: KeyAlpha, Edit: func(c *Config) { c.Alpha = 0 }},
		{Key: KeyAlpha, Edit: func(c *Config) { c.Alpha = -16 }},
		{Key: KeyAlpha, Edit: func(c *Config) { c.Alpha = math.NaN() }},
		{Key: KeyDropout, Edit: func(c *Config) { c.Dropout = 1 }},
		{Key: KeyDropout, Edit: func(c *Config) { c.Dropout = -0.1 }},
		{Key: KeyTargets, Edit: func(c *Config) { c.Targets = nil }},
		{Key: KeyTargets, Edit: func(c *Config) { c.Targets = []string{"qkv"} }},
		{Key: KeyInit, Edit: func(c *Config) { c.Init = "xavier" }},
	})
}
