package verify

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxExprLen and maxExprDepth bound what EvalExpression reads.
const (
	maxExprLen   = 256
	maxExprDepth = 32
)

// EvalExpression evaluates an arithmetic expression of decimal numbers
// with + − * / (also × ÷ and the minus sign −), parentheses and unary
// minus, with the usual precedence and left associativity.
func EvalExpression(s string) (float64, error) {
	if len(s) > maxExprLen {
		return 0, fmt.Errorf("expression longer than %d bytes", maxExprLen)
	}
	s = strings.NewReplacer("×", "*", "÷", "/", "−", "-").Replace(s)
	p := &exprParser{s: s}
	v, err := p.sum(0)
	if err != nil {
		return 0, err
	}
	p.space()
	if p.i != len(p.s) {
		return 0, fmt.Errorf("unexpected %q at byte %d", p.s[p.i:], p.i)
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, errors.New("division by zero")
	}
	return v, nil
}

type exprParser struct {
	s string
	i int
}

func (p *exprParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// sum := product (('+' | '-') product)*
func (p *exprParser) sum(depth int) (float64, error) {
	v, err := p.product(depth)
	if err != nil {
		return 0, err
	}
	for {
		p.space()
		if p.i >= len(p.s) || (p.s[p.i] != '+' && p.s[p.i] != '-') {
			return v, nil
		}
		op := p.s[p.i]
		p.i++
		w, err := p.product(depth)
		if err != nil {
			return 0, err
		}
		if op == '+' {
			v += w
		} else {
			v -= w
		}
	}
}

// product := unary (('*' | '/') unary)*
func (p *exprParser) product(depth int) (float64, error) {
	v, err := p.unary(depth)
	if err != nil {
		return 0, err
	}
	for {
		p.space()
		if p.i >= len(p.s) || (p.s[p.i] != '*' && p.s[p.i] != '/') {
			return v, nil
		}
		op := p.s[p.i]
		p.i++
		w, err := p.unary(depth)
		if err != nil {
			return 0, err
		}
		if op == '*' {
			v *= w
		} else {
			if w == 0 {
				return 0, errors.New("division by zero")
			}
			v /= w
		}
	}
}

// unary := '-' unary | '(' sum ')' | number
func (p *exprParser) unary(depth int) (float64, error) {
	if depth > maxExprDepth {
		return 0, fmt.Errorf("expression nested deeper than %d", maxExprDepth)
	}
	p.space()
	if p.i >= len(p.s) {
		return 0, errors.New("unexpected end of expression")
	}
	switch c := p.s[p.i]; {
	case c == '-':
		p.i++
		v, err := p.unary(depth + 1)
		return -v, err
	case c == '(':
		p.i++
		v, err := p.sum(depth + 1)
		if err != nil {
			return 0, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return 0, fmt.Errorf("missing ')' at byte %d", p.i)
		}
		p.i++
		return v, nil
	case c >= '0' && c <= '9' || c == '.':
		start := p.i
		for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '.') {
			p.i++
		}
		return strconv.ParseFloat(p.s[start:p.i], 64)
	default:
		return 0, fmt.Errorf("unexpected %q at byte %d", c, p.i)
	}
}
