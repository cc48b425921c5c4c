package onpolicy

import "fmt"

// Keys of Config: the flags of `gotune pairs` and the keys under `pairs:`
// in a --config file (with underscores).
const (
	KeySamples     = "samples"
	KeyTemperature = "temperature"
	KeyTopP        = "top-p"
	KeyMaxTokens   = "max-tokens"
	KeyStop        = "stop"
	KeySeed        = "seed"
)

// Validate reports the first invalid field, naming its key (Batch, which
// has no flag, by its field name).
func (c Config) Validate() error {
	switch {
	case c.Samples < 1:
		return fmt.Errorf("onpolicy: %s must be positive, got %d", KeySamples, c.Samples)
	case c.Temperature < 0 || c.Temperature != c.Temperature:
		return fmt.Errorf("onpolicy: %s must not be negative (0: greedy), got %g", KeyTemperature, c.Temperature)
	case !(c.TopP > 0 && c.TopP <= 1):
		return fmt.Errorf("onpolicy: %s must be in (0, 1], got %g", KeyTopP, c.TopP)
	case c.MaxTokens < 1:
		return fmt.Errorf("onpolicy: %s must be positive, got %d", KeyMaxTokens, c.MaxTokens)
	case c.Batch < 1:
		return fmt.Errorf("onpolicy: Batch must be positive, got %d", c.Batch)
	}
	for i, s := range c.Stop {
		if s == "" {
			return fmt.Errorf("onpolicy: %s string %d is empty", KeyStop, i)
		}
	}
	return nil
}
