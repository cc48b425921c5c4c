package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
)

// Save writes tokenizer.json and tokenizer_config.json into dir (created if
// needed), each atomically. A tokenizer read from a file is written back
// byte for byte; tokenizer_config.json records the current BOS, EOS and
// PAD tokens and chat template.
func (t *Tokenizer) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	data := t.raw
	if data == nil {
		var err error
		if data, err = marshalIndent(t.file); err != nil {
			return fmt.Errorf("save tokenizer: %w", err)
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, TokenizerFile), data); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	cfg, err := marshalIndent(t.configForSave())
	if err != nil {
		return fmt.Errorf("save tokenizer config: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, ConfigFile), cfg); err != nil {
		return fmt.Errorf("save tokenizer config: %w", err)
	}
	return nil
}

// configForSave is tokenizer_config.json as it should now read: the loaded
// config with the special tokens and chat template filled in, or a fresh
// one in the form transformers' PreTrainedTokenizerFast reads.
func (t *Tokenizer) configForSave() map[string]any {
	cfg := maps.Clone(t.config)
	if cfg == nil {
		cfg = map[string]any{}
	}
	tokenOrNil := func(id int) any {
		if s, ok := t.Token(id); ok {
			return s
		}
		return nil
	}
	setIfAbsent := func(key string, v any) {
		if _, ok := cfg[key]; !ok {
			cfg[key] = v
		}
	}
	setIfAbsent("bos_token", tokenOrNil(t.bos))
	setIfAbsent("eos_token", tokenOrNil(t.eos))
	setIfAbsent("pad_token", tokenOrNil(t.pad))
	setIfAbsent("clean_up_tokenization_spaces", t.CleanUpSpaces)
	setIfAbsent("tokenizer_class", "PreTrainedTokenizerFast")
	setIfAbsent("model_max_length", 1<<20)
	if t.ChatTemplate != t.loadedTemplate {
		if t.ChatTemplate == "" {
			delete(cfg, "chat_template")
		} else {
			cfg["chat_template"] = t.ChatTemplate
		}
	}
	if _, ok := cfg["added_tokens_decoder"]; !ok && t.file != nil && len(t.file.AddedTokens) > 0 {
		dec := map[string]any{}
		for _, at := range t.file.AddedTokens {
			dec[fmt.Sprint(at.ID)] = map[string]any{
				"content": at.Content, "lstrip": at.LStrip, "normalized": at.Normalized,
				"rstrip": at.RStrip, "single_word": at.SingleWord, "special": at.Special,
			}
		}
		cfg["added_tokens_decoder"] = dec
	}
	return cfg
}

// marshalIndent writes JSON indented by two spaces, without HTML escaping.
func marshalIndent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
