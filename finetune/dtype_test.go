package finetune

import (
	"strings"
	"testing"
)

// TestDtypeChecks: the training stages hold a base in float32 or
// bfloat16 and refuse q8_0 as decoding-only; the decoding commands also
// take q8_0; both refuse an unknown name, naming the key.
func TestDtypeChecks(t *testing.T) {
	for _, d := range []string{"", BaseFloat32, BaseBFloat16} {
		if err := CheckBaseDtype(d); err != nil {
			t.Errorf("CheckBaseDtype(%q): %v", d, err)
		}
	}
	for _, d := range []string{"", BaseFloat32, BaseBFloat16, BaseQ8_0} {
		if err := CheckDecodeDtype(d); err != nil {
			t.Errorf("CheckDecodeDtype(%q): %v", d, err)
		}
	}
	if err := CheckBaseDtype(BaseQ8_0); err == nil || !strings.Contains(err.Error(), "decoding only") || !strings.Contains(err.Error(), KeyBaseDtype) {
		t.Errorf("CheckBaseDtype(q8_0): %v", err)
	}
	for _, check := range []func(string) error{CheckBaseDtype, CheckDecodeDtype} {
		if err := check("int4"); err == nil || !strings.Contains(err.Error(), KeyBaseDtype) || !strings.Contains(err.Error(), "int4") {
			t.Errorf("int4: %v", err)
		}
	}
}
