package dpo

import (
	"os"
	"strconv"
	"strings"
)

func envs(k, d string) []float64 {
	v := os.Getenv(k)
	if v == "" {
		v = d
	}
	var out []float64
	for _, s := range strings.Split(v, ",") {
		f, _ := strconv.ParseFloat(s, 64)
		out = append(out, f)
	}
	return out
}
