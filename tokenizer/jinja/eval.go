package jinja

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// Span is a byte range [Start, End) of rendered output.
type Span struct{ Start, End int }

// maxOutput bounds the rendered size and maxSteps the work of one render,
// so that no template (they come with downloaded models) can run away.
const maxOutput = 64 << 20

var maxSteps = 5_000_000

// Render renders the template with the given variables. Go maps, slices
// and scalars are converted with FromGo.
func (t *Template) Render(vars map[string]any) (string, error) {
	s, _, err := t.RenderSpans(vars)
	return s, err
}

// RenderSpans renders the template and also returns the spans of output
// written inside {% generation %} blocks (transformers' marker of
// assistant text, for loss masks).
func (t *Template) RenderSpans(vars map[string]any) (string, []Span, error) {
	st := &state{scopes: []map[string]any{globals(), {}}}
	for k, v := range vars {
		st.scopes[1][k] = FromGo(v)
	}
	if _, err := st.exec(t.body); err != nil {
		return "", nil, err
	}
	return st.out.String(), st.spans, nil
}

type control int

const (
	ctlNone control = iota
	ctlBreak
	ctlContinue
)

type state struct {
	out    strings.Builder
	scopes []map[string]any
	spans  []Span
	loops  int
	steps  int
}

func (st *state) lookup(name string) any {
	for i := len(st.scopes) - 1; i >= 0; i-- {
		if v, ok := st.scopes[i][name]; ok {
			return v
		}
	}
	return undefined{name}
}

func (st *state) write(s string) error {
	if st.out.Len()+len(s) > maxOutput {
		return fmt.Errorf("output larger than %d bytes", maxOutput)
	}
	st.out.WriteString(s)
	return nil
}

func (st *state) exec(body []node) (control, error) {
	for _, n := range body {
		if st.steps++; st.steps > maxSteps {
			return ctlNone, fmt.Errorf("template runs more than %d steps", maxSteps)
		}
		switch n := n.(type) {
		case textNode:
			if err := st.write(n.s); err != nil {
				return ctlNone, err
			}
		case outputNode:
			v, err := st.eval(n.e)
			if err != nil {
				return ctlNone, err
			}
			if err := st.write(toStr(v)); err != nil {
				return ctlNone, err
			}
		case ifNode:
			done := false
			for i, c := range n.conds {
				v, err := st.eval(c)
				if err != nil {
					return ctlNone, err
				}
				if truthy(v) {
					if ctl, err := st.exec(n.bodies[i]); err != nil || ctl != ctlNone {
						return ctl, err
					}
					done = true
					break
				}
			}
			if !done && n.els != nil {
				if ctl, err := st.exec(n.els); err != nil || ctl != ctlNone {
					return ctl, err
				}
			}
		case forNode:
			if err := st.execFor(n); err != nil {
				return ctlNone, err
			}
		case setNode:
			if err := st.execSet(n); err != nil {
				return ctlNone, err
			}
		case breakNode:
			if st.loops == 0 {
				return ctlNone, errors.New("break outside a loop")
			}
			return ctlBreak, nil
		case continueNode:
			if st.loops == 0 {
				return ctlNone, errors.New("continue outside a loop")
			}
			return ctlContinue, nil
		case generationNode:
			start := st.out.Len()
			ctl, err := st.exec(n.body)
			if err != nil {
				return ctlNone, err
			}
			st.spans = append(st.spans, Span{start, st.out.Len()})
			if ctl != ctlNone {
				return ctl, nil
			}
		default:
			return ctlNone, fmt.Errorf("internal: unknown node %T", n)
		}
	}
	return ctlNone, nil
}

func (st *state) execFor(n forNode) error {
	seq, err := st.eval(n.iter)
	if err != nil {
		return err
	}
	items, err := iterate(seq)
	if err != nil {
		return fmt.Errorf("line %d: for: %w", n.line, err)
	}
	bind := func(scope map[string]any, item any) error {
		if len(n.targets) == 1 {
			scope[n.targets[0]] = item
			return nil
		}
		tup, ok := untuple(item).([]any)
		if !ok || len(tup) != len(n.targets) {
			return fmt.Errorf("line %d: for: cannot unpack %s into %d names", n.line, repr(item), len(n.targets))
		}
		for i, name := range n.targets {
			scope[name] = tup[i]
		}
		return nil
	}
	if n.filter != nil {
		var kept []any
		for _, item := range items {
			scope := map[string]any{}
			if err := bind(scope, item); err != nil {
				return err
			}
			st.scopes = append(st.scopes, scope)
			v, err := st.eval(n.filter)
			st.scopes = st.scopes[:len(st.scopes)-1]
			if err != nil {
				return err
			}
			if truthy(v) {
				kept = append(kept, item)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		if n.els != nil {
			_, err := st.exec(n.els)
			return err
		}
		return nil
	}
	st.loops++
	defer func() { st.loops-- }()
	loop := &loopInfo{length: len(items), items: items}
	for i, item := range items {
		if st.steps++; st.steps > maxSteps {
			return fmt.Errorf("template runs more than %d steps", maxSteps)
		}
		loop.index0 = i
		scope := map[string]any{"loop": loop}
		if err := bind(scope, item); err != nil {
			return err
		}
		st.scopes = append(st.scopes, scope)
		ctl, err := st.exec(n.body)
		st.scopes = st.scopes[:len(st.scopes)-1]
		if err != nil {
			return err
		}
		if ctl == ctlBreak {
			break
		}
	}
	return nil
}

func (st *state) execSet(n setNode) error {
	var v any
	if n.value != nil {
		var err error
		if v, err = st.eval(n.value); err != nil {
			return err
		}
	} else {
		// Block set: capture the body's output.
		saved := st.out
		st.out = strings.Builder{}
		_, err := st.exec(n.body)
		v = st.out.String()
		st.out = saved
		if err != nil {
			return err
		}
	}
	scope := st.scopes[len(st.scopes)-1]
	if n.attr != "" {
		ns, ok := st.lookup(n.names[0]).(*namespace)
		if !ok {
			return fmt.Errorf("line %d: set %s.%s: %s is not a namespace", n.line, n.names[0], n.attr, n.names[0])
		}
		ns.attrs.Set(n.attr, v)
		return nil
	}
	if len(n.names) == 1 {
		scope[n.names[0]] = v
		return nil
	}
	tup, ok := untuple(v).([]any)
	if !ok || len(tup) != len(n.names) {
		return fmt.Errorf("line %d: set: cannot unpack %s into %d names", n.line, repr(v), len(n.names))
	}
	for i, name := range n.names {
		scope[name] = tup[i]
	}
	return nil
}

func (st *state) evalAll(es []expr) ([]any, error) {
	out := make([]any, len(es))
	for i, e := range es {
		v, err := st.eval(e)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (st *state) evalKwargs(ks []kwarg) (map[string]any, error) {
	if len(ks) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(ks))
	for _, k := range ks {
		v, err := st.eval(k.v)
		if err != nil {
			return nil, err
		}
		out[k.name] = v
	}
	return out, nil
}

func (st *state) eval(e expr) (any, error) {
	switch e := e.(type) {
	case literal:
		return e.v, nil
	case nameRef:
		return st.lookup(e.name), nil
	case getAttr:
		obj, err := st.eval(e.obj)
		if err != nil {
			return nil, err
		}
		return getattr(obj, e.attr, describeExpr(e.obj))
	case getItem:
		obj, err := st.eval(e.obj)
		if err != nil {
			return nil, err
		}
		key, err := st.eval(e.key)
		if err != nil {
			return nil, err
		}
		return getitem(obj, key, describeExpr(e.obj))
	case slice:
		return st.evalSlice(e)
	case call:
		fn, err := st.eval(e.fn)
		if err != nil {
			return nil, err
		}
		args, err := st.evalAll(e.args)
		if err != nil {
			return nil, err
		}
		kwargs, err := st.evalKwargs(e.kwargs)
		if err != nil {
			return nil, err
		}
		f, ok := fn.(callable)
		if !ok {
			if u, isU := fn.(undefined); isU {
				return nil, fmt.Errorf("%s is undefined", u.name)
			}
			return nil, fmt.Errorf("%s is not callable", typeName(fn))
		}
		return f(args, kwargs)
	case filterExpr:
		v, err := st.eval(e.arg)
		if err != nil {
			return nil, err
		}
		args, err := st.evalAll(e.args)
		if err != nil {
			return nil, err
		}
		kwargs, err := st.evalKwargs(e.kwargs)
		if err != nil {
			return nil, err
		}
		out, err := applyFilter(st, e.name, v, args, kwargs)
		if err != nil {
			return nil, fmt.Errorf("line %d: filter %s: %w", e.line, e.name, err)
		}
		return out, nil
	case testExpr:
		v, err := st.eval(e.arg)
		if err != nil {
			return nil, err
		}
		args, err := st.evalAll(e.args)
		if err != nil {
			return nil, err
		}
		ok, err := applyTest(e.name, v, args)
		if err != nil {
			return nil, fmt.Errorf("line %d: test %s: %w", e.line, e.name, err)
		}
		return ok != e.negate, nil
	case unary:
		v, err := st.eval(e.x)
		if err != nil {
			return nil, err
		}
		if e.op == "not" {
			return !truthy(v), nil
		}
		switch x := v.(type) {
		case int:
			return -x, nil
		case float64:
			return -x, nil
		case bool:
			return -boolInt(x), nil
		}
		return nil, fmt.Errorf("bad operand type for unary -: %s", typeName(v))
	case binary:
		return st.evalBinary(e)
	case compareChain:
		x, err := st.eval(e.operands[0])
		if err != nil {
			return nil, err
		}
		for i, op := range e.ops {
			y, err := st.eval(e.operands[i+1])
			if err != nil {
				return nil, err
			}
			r, err := binaryOp(op, x, y)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", e.line, err)
			}
			if !truthy(r) {
				return false, nil
			}
			x = y
		}
		return true, nil
	case condExpr:
		c, err := st.eval(e.cond)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return st.eval(e.yes)
		}
		return st.eval(e.no)
	case listExpr:
		return st.evalAll(e.items)
	case tupleExpr:
		items, err := st.evalAll(e.items)
		return tuple(items), err
	case dictExpr:
		d := NewDict()
		for i := range e.keys {
			k, err := st.eval(e.keys[i])
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("dict keys must be strings, got %s", typeName(k))
			}
			v, err := st.eval(e.values[i])
			if err != nil {
				return nil, err
			}
			d.Set(ks, v)
		}
		return d, nil
	}
	return nil, fmt.Errorf("internal: unknown expression %T", e)
}

// describeExpr names an expression for error messages.
func describeExpr(e expr) string {
	switch e := e.(type) {
	case nameRef:
		return e.name
	case getAttr:
		return describeExpr(e.obj) + "." + e.attr
	case getItem:
		if l, ok := e.key.(literal); ok {
			return describeExpr(e.obj) + "[" + repr(l.v) + "]"
		}
		return describeExpr(e.obj) + "[...]"
	}
	return "value"
}

func (st *state) evalBinary(e binary) (any, error) {
	x, err := st.eval(e.x)
	if err != nil {
		return nil, err
	}
	switch e.op {
	case "and":
		if !truthy(x) {
			return x, nil
		}
		return st.eval(e.y)
	case "or":
		if truthy(x) {
			return x, nil
		}
		return st.eval(e.y)
	}
	y, err := st.eval(e.y)
	if err != nil {
		return nil, err
	}
	v, err := binaryOp(e.op, x, y)
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", e.line, err)
	}
	return v, nil
}

func binaryOp(op string, x, y any) (any, error) {
	switch op {
	case "==":
		return equal(x, y), nil
	case "!=":
		return !equal(x, y), nil
	case "<", ">", "<=", ">=":
		c, err := compare(x, y)
		if err != nil {
			return nil, err
		}
		switch op {
		case "<":
			return c < 0, nil
		case ">":
			return c > 0, nil
		case "<=":
			return c <= 0, nil
		}
		return c >= 0, nil
	case "in", "not in":
		ok, err := contains(y, x)
		if err != nil {
			return nil, err
		}
		return ok == (op == "in"), nil
	case "~":
		return toStr(x) + toStr(y), nil
	}
	if u, ok := x.(undefined); ok {
		return nil, fmt.Errorf("%s is undefined", u.name)
	}
	if u, ok := y.(undefined); ok {
		return nil, fmt.Errorf("%s is undefined", u.name)
	}
	switch op {
	case "+":
		switch a := x.(type) {
		case string:
			if b, ok := y.(string); ok {
				return a + b, nil
			}
		case []any:
			if b, ok := y.([]any); ok {
				return append(append([]any{}, a...), b...), nil
			}
		}
	case "*":
		if s, ok := x.(string); ok {
			if n, ok := y.(int); ok {
				if n < 0 {
					n = 0
				}
				if len(s)*n > maxOutput {
					return nil, errors.New("string repetition too large")
				}
				return strings.Repeat(s, n), nil
			}
		}
		if l, ok := x.([]any); ok {
			if n, ok := y.(int); ok {
				if len(l)*n > maxOutput {
					return nil, errors.New("list repetition too large")
				}
				var out []any
				for i := 0; i < n; i++ {
					out = append(out, l...)
				}
				return out, nil
			}
		}
	case "%":
		if _, ok := x.(string); ok {
			return nil, errors.New("string formatting with % is not supported")
		}
	}
	a, okA := number(x)
	b, okB := number(y)
	if !okA || !okB {
		return nil, fmt.Errorf("unsupported operand types for %s: %s and %s", op, typeName(x), typeName(y))
	}
	xi, xInt := intLike(x)
	yi, yInt := intLike(y)
	bothInt := xInt && yInt
	switch op {
	case "+":
		if bothInt {
			return xi + yi, nil
		}
		return a + b, nil
	case "-":
		if bothInt {
			return xi - yi, nil
		}
		return a - b, nil
	case "*":
		if bothInt {
			return xi * yi, nil
		}
		return a * b, nil
	case "/":
		if b == 0 {
			return nil, errors.New("division by zero")
		}
		return a / b, nil
	case "//":
		if b == 0 {
			return nil, errors.New("integer division by zero")
		}
		if bothInt {
			q := xi / yi
			if (xi%yi != 0) && ((xi < 0) != (yi < 0)) {
				q--
			}
			return q, nil
		}
		return math.Floor(a / b), nil
	case "%":
		if b == 0 {
			return nil, errors.New("modulo by zero")
		}
		if bothInt {
			m := xi % yi
			if m != 0 && (m < 0) != (yi < 0) {
				m += yi
			}
			return m, nil
		}
		m := math.Mod(a, b)
		if m != 0 && (m < 0) != (b < 0) {
			m += b
		}
		return m, nil
	case "**":
		if bothInt && yi >= 0 {
			r := 1
			for i := 0; i < yi; i++ {
				r *= xi
			}
			return r, nil
		}
		return math.Pow(a, b), nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

func intLike(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case bool:
		return boolInt(x), true
	}
	return 0, false
}

// contains is Python's "needle in haystack".
func contains(haystack, needle any) (bool, error) {
	switch h := untuple(haystack).(type) {
	case string:
		n, ok := needle.(string)
		if !ok {
			return false, fmt.Errorf("'in <string>' requires string as left operand, not %s", typeName(needle))
		}
		return strings.Contains(h, n), nil
	case []any:
		for _, x := range h {
			if equal(x, needle) {
				return true, nil
			}
		}
		return false, nil
	case *Dict:
		k, ok := needle.(string)
		if !ok {
			return false, nil
		}
		_, found := h.m[k]
		return found, nil
	case undefined:
		return false, nil
	}
	return false, fmt.Errorf("argument of type %s is not iterable", typeName(haystack))
}

func (st *state) evalSlice(e slice) (any, error) {
	obj, err := st.eval(e.obj)
	if err != nil {
		return nil, err
	}
	var idx [3]*int
	for i, x := range []expr{e.start, e.stop, e.step} {
		if x == nil {
			continue
		}
		v, err := st.eval(x)
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		n, ok := intLike(v)
		if !ok {
			return nil, fmt.Errorf("slice indices must be integers, got %s", typeName(v))
		}
		idx[i] = &n
	}
	var items []any
	isStr := false
	switch o := untuple(obj).(type) {
	case []any:
		items = o
	case string:
		isStr = true
		for _, r := range o {
			items = append(items, string(r))
		}
	default:
		return nil, fmt.Errorf("%s cannot be sliced", typeName(obj))
	}
	out, err := pySlice(items, idx[0], idx[1], idx[2])
	if err != nil {
		return nil, err
	}
	if isStr {
		var b strings.Builder
		for _, x := range out {
			b.WriteString(x.(string))
		}
		return b.String(), nil
	}
	return out, nil
}

// pySlice is Python's items[start:stop:step].
func pySlice(items []any, start, stop, step *int) ([]any, error) {
	n := len(items)
	st := 1
	if step != nil {
		st = *step
	}
	if st == 0 {
		return nil, errors.New("slice step cannot be zero")
	}
	clamp := func(p *int, def, lo, hi int) int {
		if p == nil {
			return def
		}
		v := *p
		if v < 0 {
			v += n
		}
		return max(lo, min(v, hi))
	}
	var out []any
	if st > 0 {
		a, b := clamp(start, 0, 0, n), clamp(stop, n, 0, n)
		for i := a; i < b; i += st {
			out = append(out, items[i])
		}
	} else {
		a, b := clamp(start, n-1, -1, n-1), clamp(stop, -1, -1, n-1)
		for i := a; i > b; i += st {
			out = append(out, items[i])
		}
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

// getattr is Jinja's environment.getattr: an attribute (method) first,
// then an item.
func getattr(obj any, name, what string) (any, error) {
	switch o := obj.(type) {
	case undefined:
		return nil, fmt.Errorf("%s is undefined (reading attribute %q)", o.name, name)
	case *Dict:
		if m, ok := dictMethod(o, name); ok {
			return m, nil
		}
		if v, ok := o.m[name]; ok {
			return v, nil
		}
	case *namespace:
		if v, ok := o.attrs.m[name]; ok {
			return v, nil
		}
	case *loopInfo:
		if v, ok := o.attr(name); ok {
			return v, nil
		}
	case string:
		if m, ok := stringMethod(o, name); ok {
			return m, nil
		}
	case []any:
		if m, ok := listMethod(o, name); ok {
			return m, nil
		}
	}
	return undefined{what + "." + name}, nil
}

// getitem is Jinja's environment.getitem: an item first, then an attribute.
func getitem(obj, key any, what string) (any, error) {
	obj = untuple(obj)
	switch o := obj.(type) {
	case undefined:
		return nil, fmt.Errorf("%s is undefined (reading item %s)", o.name, repr(key))
	case *Dict:
		if k, ok := key.(string); ok {
			if v, ok := o.m[k]; ok {
				return v, nil
			}
			return getattr(obj, k, what)
		}
	case []any:
		if i, ok := intLike(key); ok {
			if i < 0 {
				i += len(o)
			}
			if i >= 0 && i < len(o) {
				return o[i], nil
			}
			return undefined{fmt.Sprintf("%s[%s]", what, repr(key))}, nil
		}
	case string:
		if i, ok := intLike(key); ok {
			rs := []rune(o)
			if i < 0 {
				i += len(rs)
			}
			if i >= 0 && i < len(rs) {
				return string(rs[i]), nil
			}
			return undefined{fmt.Sprintf("%s[%s]", what, repr(key))}, nil
		}
	}
	if k, ok := key.(string); ok {
		return getattr(obj, k, what)
	}
	return undefined{fmt.Sprintf("%s[%s]", what, repr(key))}, nil
}

// globals are the functions every template sees.
func globals() map[string]any {
	return map[string]any{
		"namespace": callable(func(args []any, kwargs map[string]any) (any, error) {
			d := NewDict()
			for _, a := range args {
				src, ok := a.(*Dict)
				if !ok {
					return nil, fmt.Errorf("namespace: want a dict argument, got %s", typeName(a))
				}
				for _, k := range src.keys {
					d.Set(k, src.m[k])
				}
			}
			for _, k := range sortedKeys(kwargs) {
				d.Set(k, kwargs[k])
			}
			return &namespace{d}, nil
		}),
		"dict": callable(func(args []any, kwargs map[string]any) (any, error) {
			d := NewDict()
			for _, k := range sortedKeys(kwargs) {
				d.Set(k, kwargs[k])
			}
			return d, nil
		}),
		"range": callable(func(args []any, _ map[string]any) (any, error) {
			var ns []int
			for _, a := range args {
				n, ok := intLike(a)
				if !ok {
					return nil, fmt.Errorf("range: want integers, got %s", typeName(a))
				}
				ns = append(ns, n)
			}
			start, stop, step := 0, 0, 1
			switch len(ns) {
			case 1:
				stop = ns[0]
			case 2:
				start, stop = ns[0], ns[1]
			case 3:
				start, stop, step = ns[0], ns[1], ns[2]
			default:
				return nil, errors.New("range: want 1 to 3 arguments")
			}
			if step == 0 {
				return nil, errors.New("range: step must not be zero")
			}
			var out []any
			for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
				if len(out) >= 1<<20 {
					return nil, errors.New("range: too long")
				}
				out = append(out, i)
			}
			if out == nil {
				out = []any{}
			}
			return out, nil
		}),
		"raise_exception": callable(func(args []any, _ map[string]any) (any, error) {
			msg := ""
			if len(args) > 0 {
				msg = toStr(args[0])
			}
			return nil, &TemplateError{Message: msg}
		}),
		"strftime_now": callable(func(args []any, _ map[string]any) (any, error) {
			if len(args) != 1 {
				return nil, errors.New("strftime_now: want one format argument")
			}
			f, ok := args[0].(string)
			if !ok {
				return nil, errors.New("strftime_now: format must be a string")
			}
			return strftime(time.Now(), f), nil
		}),
	}
}

// TemplateError is an error the template raised with raise_exception.
type TemplateError struct{ Message string }

// Error returns the message the template raised.
func (e *TemplateError) Error() string { return "template error: " + e.Message }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

// strftime formats t with the common C strftime directives.
func strftime(t time.Time, f string) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'b':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// pyIsSpace is Python's str.isspace for one character.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
