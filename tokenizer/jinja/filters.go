package jinja

import (
	"errors"
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

func sortStrings(s []string) { sort.Strings(s) }

// arg returns positional argument i, else keyword name, else def.
func arg(args []any, kwargs map[string]any, i int, name string, def any) any {
	if i < len(args) {
		return args[i]
	}
	if v, ok := kwargs[name]; ok {
		return v
	}
	return def
}

func applyFilter(st *state, name string, v any, args []any, kwargs map[string]any) (any, error) {
	switch name {
	case "length", "count":
		return length(v)
	case "trim":
		s, err := asString(v)
		if err != nil {
			return nil, err
		}
		return pyStrip(s, arg(args, kwargs, 0, "chars", nil), true, true)
	case "upper":
		s, err := asString(v)
		return strings.ToUpper(s), err
	case "lower":
		s, err := asString(v)
		return strings.ToLower(s), err
	case "title":
		s, err := asString(v)
		return pyTitle(s), err
	case "capitalize":
		s, err := asString(v)
		return pyCapitalize(s), err
	case "string":
		return toStr(v), nil
	case "safe", "e", "escape":
		if name == "safe" {
			return v, nil
		}
		return html.EscapeString(toStr(v)), nil
	case "tojson":
		indent := arg(args, kwargs, 0, "indent", nil)
		sortKeys := truthy(arg(nil, kwargs, 0, "sort_keys", false))
		ensureASCII := truthy(arg(nil, kwargs, 0, "ensure_ascii", false))
		ind := -1
		if indent != nil {
			n, ok := intLike(indent)
			if !ok {
				return nil, errors.New("indent must be an integer")
			}
			ind = n
		}
		var b strings.Builder
		if err := writeJSON(&b, v, ind, 0, sortKeys, ensureASCII); err != nil {
			return nil, err
		}
		return b.String(), nil
	case "default", "d":
		def := arg(args, kwargs, 0, "default_value", "")
		boolean := truthy(arg(args, kwargs, 1, "boolean", false))
		if _, isU := v.(undefined); isU || (boolean && !truthy(v)) {
			return def, nil
		}
		return v, nil
	case "first", "last":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return undefined{name + " of an empty sequence"}, nil
		}
		if name == "first" {
			return items[0], nil
		}
		return items[len(items)-1], nil
	case "join":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		sep := toStr(arg(args, kwargs, 0, "d", ""))
		attr := arg(args, kwargs, 1, "attribute", nil)
		parts := make([]string, len(items))
		for i, x := range items {
			if attr != nil {
				if x, err = getitem(x, attr, "item"); err != nil {
					return nil, err
				}
			}
			parts[i] = toStr(x)
		}
		return strings.Join(parts, sep), nil
	case "list":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		return append([]any{}, items...), nil
	case "int":
		def := arg(args, kwargs, 0, "default", 0)
		switch x := v.(type) {
		case int:
			return x, nil
		case bool:
			return boolInt(x), nil
		case float64:
			return int(x), nil
		case string:
			if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
				return n, nil
			}
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return int(f), nil
			}
		}
		return def, nil
	case "float":
		def := arg(args, kwargs, 0, "default", 0.0)
		if f, ok := number(v); ok {
			return f, nil
		}
		if s, ok := v.(string); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
				return f, nil
			}
		}
		return def, nil
	case "abs":
		switch x := v.(type) {
		case int:
			if x < 0 {
				return -x, nil
			}
			return x, nil
		case float64:
			return math.Abs(x), nil
		}
		return nil, fmt.Errorf("bad operand type for abs(): %s", typeName(v))
	case "round":
		f, ok := number(v)
		if !ok {
			return nil, fmt.Errorf("cannot round %s", typeName(v))
		}
		prec, _ := intLike(arg(args, kwargs, 0, "precision", 0))
		method := toStr(arg(args, kwargs, 1, "method", "common"))
		p := math.Pow(10, float64(prec))
		switch method {
		case "common":
			// Python's round: halves go to the even neighbour.
			return math.RoundToEven(f*p) / p, nil
		case "floor":
			return math.Floor(f*p) / p, nil
		case "ceil":
			return math.Ceil(f*p) / p, nil
		}
		return nil, fmt.Errorf("round: unknown method %q", method)
	case "replace":
		s, err := asString(v)
		if err != nil {
			return nil, err
		}
		old, ok1 := arg(args, kwargs, 0, "old", nil).(string)
		nw, ok2 := arg(args, kwargs, 1, "new", nil).(string)
		if !ok1 || !ok2 {
			return nil, errors.New("want string arguments")
		}
		n := -1
		if c := arg(args, kwargs, 2, "count", nil); c != nil {
			n, _ = intLike(c)
		}
		return strings.Replace(s, old, nw, n), nil
	case "items":
		d, ok := v.(*Dict)
		if !ok {
			if _, isU := v.(undefined); isU {
				return []any{}, nil
			}
			return nil, fmt.Errorf("want a dict, got %s", typeName(v))
		}
		return dictItems(d), nil
	case "dictsort":
		d, ok := v.(*Dict)
		if !ok {
			return nil, fmt.Errorf("want a dict, got %s", typeName(v))
		}
		items := dictItems(d)
		byValue := toStr(arg(args, kwargs, 1, "by", "key")) == "value"
		rev := truthy(arg(args, kwargs, 2, "reverse", false))
		var err error
		sort.SliceStable(items, func(i, j int) bool {
			a, b := items[i].(tuple), items[j].(tuple)
			k := 0
			if byValue {
				k = 1
			}
			c, e := compare(a[k], b[k])
			if e != nil {
				err = e
			}
			if rev {
				return c > 0
			}
			return c < 0
		})
		return items, err
	case "reverse":
		if s, ok := v.(string); ok {
			rs := []rune(s)
			for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
				rs[i], rs[j] = rs[j], rs[i]
			}
			return string(rs), nil
		}
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		out := make([]any, len(items))
		for i, x := range items {
			out[len(items)-1-i] = x
		}
		return out, nil
	case "sort":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		out := append([]any{}, items...)
		rev := truthy(arg(args, kwargs, 0, "reverse", false))
		attr := arg(args, kwargs, 2, "attribute", nil)
		var serr error
		key := func(x any) any {
			if attr == nil {
				return x
			}
			k, err := getitem(x, attr, "item")
			if err != nil {
				serr = err
			}
			return k
		}
		sort.SliceStable(out, func(i, j int) bool {
			c, err := compare(key(out[i]), key(out[j]))
			if err != nil {
				serr = err
			}
			if rev {
				return c > 0
			}
			return c < 0
		})
		return out, serr
	case "unique":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, x := range items {
			dup := false
			for _, y := range out {
				if equal(x, y) {
					dup = true
					break
				}
			}
			if !dup {
				out = append(out, x)
			}
		}
		return out, nil
	case "sum":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		var total any = 0
		if s := arg(args, kwargs, 1, "start", nil); s != nil {
			total = s
		}
		attr := arg(args, kwargs, 0, "attribute", nil)
		for _, x := range items {
			if attr != nil {
				if x, err = getitem(x, attr, "item"); err != nil {
					return nil, err
				}
			}
			if total, err = binaryOp("+", total, x); err != nil {
				return nil, err
			}
		}
		return total, nil
	case "min", "max":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return undefined{name + " of an empty sequence"}, nil
		}
		best := items[0]
		for _, x := range items[1:] {
			c, err := compare(x, best)
			if err != nil {
				return nil, err
			}
			if (name == "min" && c < 0) || (name == "max" && c > 0) {
				best = x
			}
		}
		return best, nil
	case "map":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, len(items))
		if attr, ok := kwargs["attribute"]; ok {
			def, hasDef := kwargs["default"]
			for _, x := range items {
				y, err := getitem(x, attr, "item")
				if err != nil {
					return nil, err
				}
				if _, isU := y.(undefined); isU && hasDef {
					y = def
				}
				out = append(out, y)
			}
			return out, nil
		}
		if len(args) == 0 {
			return nil, errors.New("map: want a filter name or attribute=")
		}
		fname, ok := args[0].(string)
		if !ok {
			return nil, errors.New("map: filter name must be a string")
		}
		for _, x := range items {
			y, err := applyFilter(st, fname, x, args[1:], nil)
			if err != nil {
				return nil, err
			}
			out = append(out, y)
		}
		return out, nil
	case "select", "reject", "selectattr", "rejectattr":
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		byAttr := strings.HasSuffix(name, "attr")
		keep := strings.HasPrefix(name, "select")
		rest := args
		var attr any
		if byAttr {
			if len(rest) == 0 {
				return nil, fmt.Errorf("%s: want an attribute name", name)
			}
			attr, rest = rest[0], rest[1:]
		}
		var out []any
		for _, x := range items {
			subject := x
			if byAttr {
				if subject, err = getitem(x, attr, "item"); err != nil {
					return nil, err
				}
			}
			ok := truthy(subject)
			if len(rest) > 0 {
				tname, isStr := rest[0].(string)
				if !isStr {
					return nil, fmt.Errorf("%s: test name must be a string", name)
				}
				if ok, err = applyTest(tname, subject, rest[1:]); err != nil {
					return nil, err
				}
			}
			if ok == keep {
				out = append(out, x)
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case "attr":
		a, ok := arg(args, kwargs, 0, "name", nil).(string)
		if !ok {
			return nil, errors.New("attr: want a name")
		}
		return getattr(v, a, "value")
	case "indent":
		s, err := asString(v)
		if err != nil {
			return nil, err
		}
		width := arg(args, kwargs, 0, "width", 4)
		var pad string
		if n, ok := intLike(width); ok {
			pad = strings.Repeat(" ", max(n, 0))
		} else {
			pad = toStr(width)
		}
		first := truthy(arg(args, kwargs, 1, "first", false))
		blank := truthy(arg(args, kwargs, 2, "blank", false))
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if i == 0 && !first {
				continue
			}
			if l == "" && !blank {
				continue
			}
			lines[i] = pad + l
		}
		return strings.Join(lines, "\n"), nil
	case "wordcount":
		s, err := asString(v)
		return len(strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' })), err
	}
	return nil, fmt.Errorf("unsupported filter %q", name)
}

func asString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case undefined:
		return "", nil
	}
	return toStr(v), nil
}

func dictItems(d *Dict) []any {
	out := make([]any, len(d.keys))
	for i, k := range d.keys {
		out[i] = tuple{k, d.m[k]}
	}
	return out
}

func applyTest(name string, v any, args []any) (bool, error) {
	want := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("want %d argument(s), got %d", n, len(args))
		}
		return nil
	}
	_, isU := v.(undefined)
	switch name {
	case "defined":
		return !isU, nil
	case "undefined":
		return isU, nil
	case "none":
		return v == nil, nil
	case "boolean":
		_, ok := v.(bool)
		return ok, nil
	case "true":
		b, ok := v.(bool)
		return ok && b, nil
	case "false":
		b, ok := v.(bool)
		return ok && !b, nil
	case "string":
		_, ok := v.(string)
		return ok, nil
	case "number":
		switch v.(type) {
		case int, float64:
			return true, nil
		}
		return false, nil
	case "integer":
		_, ok := v.(int)
		return ok, nil
	case "float":
		_, ok := v.(float64)
		return ok, nil
	case "mapping":
		_, ok := v.(*Dict)
		return ok, nil
	case "iterable":
		switch v.(type) {
		case []any, tuple, *Dict, string:
			return true, nil
		}
		return false, nil
	case "sequence":
		switch v.(type) {
		case []any, tuple, *Dict, string:
			return true, nil
		}
		return false, nil
	case "callable":
		_, ok := v.(callable)
		return ok, nil
	case "even", "odd":
		n, ok := v.(int)
		if !ok {
			return false, fmt.Errorf("want an integer, got %s", typeName(v))
		}
		return (n%2 == 0) == (name == "even"), nil
	case "divisibleby":
		if err := want(1); err != nil {
			return false, err
		}
		n, ok1 := v.(int)
		d, ok2 := args[0].(int)
		if !ok1 || !ok2 || d == 0 {
			return false, errors.New("want non-zero integers")
		}
		return n%d == 0, nil
	case "lower", "upper":
		s, ok := v.(string)
		if !ok {
			return false, nil
		}
		if name == "lower" {
			return s == strings.ToLower(s), nil
		}
		return s == strings.ToUpper(s), nil
	case "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "gt", "greaterthan", ">", "le", "<=", "ge", ">=", "in", "sameas":
		if err := want(1); err != nil {
			return false, err
		}
		op := map[string]string{"eq": "==", "equalto": "==", "ne": "!=", "lt": "<", "lessthan": "<",
			"gt": ">", "greaterthan": ">", "le": "<=", "ge": ">=", "sameas": "=="}[name]
		if op == "" {
			op = name
		}
		r, err := binaryOp(op, v, args[0])
		if err != nil {
			return false, err
		}
		return truthy(r), nil
	}
	return false, fmt.Errorf("unsupported test %q", name)
}

// bound wraps a method implementation as a callable.
func bound(f func(args []any, kwargs map[string]any) (any, error)) callable { return f }

func stringMethod(s, name string) (callable, bool) {
	switch name {
	case "startswith", "endswith":
		return bound(func(args []any, kwargs map[string]any) (any, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("%s: want an argument", name)
			}
			var cands []any
			switch a := untuple(args[0]).(type) {
			case string:
				cands = []any{a}
			case []any:
				cands = a
			default:
				return nil, fmt.Errorf("%s: want a string or tuple", name)
			}
			for _, c := range cands {
				p, ok := c.(string)
				if !ok {
					return nil, fmt.Errorf("%s: want strings", name)
				}
				if (name == "startswith" && strings.HasPrefix(s, p)) || (name == "endswith" && strings.HasSuffix(s, p)) {
					return true, nil
				}
			}
			return false, nil
		}), true
	case "strip", "lstrip", "rstrip":
		return bound(func(args []any, kwargs map[string]any) (any, error) {
			return pyStrip(s, arg(args, kwargs, 0, "chars", nil), name != "rstrip", name != "lstrip")
		}), true
	case "split", "rsplit":
		return bound(func(args []any, kwargs map[string]any) (any, error) {
			sep := arg(args, kwargs, 0, "sep", nil)
			maxsplit := -1
			if m := arg(args, kwargs, 1, "maxsplit", nil); m != nil {
				maxsplit, _ = intLike(m)
			}
			return pySplit(s, sep, maxsplit, name == "rsplit")
		}), true
	case "splitlines":
		return bound(func([]any, map[string]any) (any, error) {
			lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n"), "\n")
			if len(lines) > 0 && lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			out := make([]any, len(lines))
			for i, l := range lines {
				out[i] = l
			}
			return out, nil
		}), true
	case "upper", "lower", "title", "capitalize":
		return bound(func([]any, map[string]any) (any, error) {
			switch name {
			case "upper":
				return strings.ToUpper(s), nil
			case "lower":
				return strings.ToLower(s), nil
			case "title":
				return pyTitle(s), nil
			}
			return pyCapitalize(s), nil
		}), true
	case "replace":
		return bound(func(args []any, kwargs map[string]any) (any, error) {
			if len(args) < 2 {
				return nil, errors.New("replace: want old and new")
			}
			old, ok1 := args[0].(string)
			nw, ok2 := args[1].(string)
			if !ok1 || !ok2 {
				return nil, errors.New("replace: want strings")
			}
			n := -1
			if len(args) > 2 {
				n, _ = intLike(args[2])
			}
			return strings.Replace(s, old, nw, n), nil
		}), true
	case "find", "count":
		return bound(func(args []any, kwargs map[string]any) (any, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("%s: want an argument", name)
			}
			sub, ok := args[0].(string)
			if !ok {
				return nil, fmt.Errorf("%s: want a string", name)
			}
			if name == "count" {
				if sub == "" {
					return utf8.RuneCountInString(s) + 1, nil
				}
				return strings.Count(s, sub), nil
			}
			k := strings.Index(s, sub)
			if k < 0 {
				return -1, nil
			}
			return utf8.RuneCountInString(s[:k]), nil
		}), true
	case "join":
		return bound(func(args []any, kwargs map[string]any) (any, error) {
			if len(args) != 1 {
				return nil, errors.New("join: want one argument")
			}
			items, err := iterate(args[0])
			if err != nil {
				return nil, err
			}
			parts := make([]string, len(items))
			for i, x := range items {
				p, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("join: item %d is %s, not str", i, typeName(x))
				}
				parts[i] = p
			}
			return strings.Join(parts, s), nil
		}), true
	case "isdigit", "isspace", "isalpha", "isalnum", "islower", "isupper":
		return bound(func([]any, map[string]any) (any, error) {
			if s == "" {
				return false, nil
			}
			var cased bool
			for _, r := range s {
				var ok bool
				switch name {
				case "isdigit":
					ok = unicode.IsDigit(r)
				case "isspace":
					ok = pyIsSpace(r)
				case "isalpha":
					ok = unicode.IsLetter(r)
				case "isalnum":
					ok = unicode.IsLetter(r) || unicode.IsDigit(r)
				case "islower":
					ok = !unicode.IsUpper(r)
					cased = cased || unicode.IsLower(r)
				case "isupper":
					ok = !unicode.IsLower(r)
					cased = cased || unicode.IsUpper(r)
				}
				if !ok {
					return false, nil
				}
			}
			if name == "islower" || name == "isupper" {
				return cased, nil
			}
			return true, nil
		}), true
	}
	return nil, false
}

func dictMethod(d *Dict, name string) (callable, bool) {
	switch name {
	case "items":
		return bound(func([]any, map[string]any) (any, error) { return dictItems(d), nil }), true
	case "keys":
		return bound(func([]any, map[string]any) (any, error) {
			out := make([]any, len(d.keys))
			for i, k := range d.keys {
				out[i] = k
			}
			return out, nil
		}), true
	case "values":
		return bound(func([]any, map[string]any) (any, error) {
			out := make([]any, len(d.keys))
			for i, k := range d.keys {
				out[i] = d.m[k]
			}
			return out, nil
		}), true
	case "get":
		return bound(func(args []any, kwargs map[string]any) (any, error) {
			if len(args) == 0 {
				return nil, errors.New("get: want a key")
			}
			if k, ok := args[0].(string); ok {
				if v, ok := d.m[k]; ok {
					return v, nil
				}
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return nil, nil
		}), true
	case "copy":
		return bound(func([]any, map[string]any) (any, error) {
			c := NewDict()
			for _, k := range d.keys {
				c.Set(k, d.m[k])
			}
			return c, nil
		}), true
	case "update", "pop", "popitem", "setdefault", "clear", "fromkeys":
		return immutable("dict", name), true
	}
	return nil, false
}

func listMethod(l []any, name string) (callable, bool) {
	switch name {
	case "index":
		return bound(func(args []any, _ map[string]any) (any, error) {
			if len(args) == 0 {
				return nil, errors.New("index: want a value")
			}
			for i, x := range l {
				if equal(x, args[0]) {
					return i, nil
				}
			}
			return nil, fmt.Errorf("%s is not in list", repr(args[0]))
		}), true
	case "count":
		return bound(func(args []any, _ map[string]any) (any, error) {
			if len(args) == 0 {
				return nil, errors.New("count: want a value")
			}
			n := 0
			for _, x := range l {
				if equal(x, args[0]) {
					n++
				}
			}
			return n, nil
		}), true
	case "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse":
		return immutable("list", name), true
	}
	return nil, false
}

// immutable is a mutating method, refused as transformers' sandbox does.
func immutable(typ, name string) callable {
	return func([]any, map[string]any) (any, error) {
		return nil, fmt.Errorf("%s.%s: templates may not modify a %s", typ, name, typ)
	}
}

// pyStrip is Python's str.strip/lstrip/rstrip.
func pyStrip(s string, chars any, left, right bool) (any, error) {
	is := pyIsSpace
	if chars != nil {
		cs, ok := chars.(string)
		if !ok {
			return nil, errors.New("strip: chars must be a string")
		}
		is = func(r rune) bool { return strings.ContainsRune(cs, r) }
	}
	if left {
		s = strings.TrimLeftFunc(s, is)
	}
	if right {
		s = strings.TrimRightFunc(s, is)
	}
	return s, nil
}

// pySplit is Python's str.split/rsplit.
func pySplit(s string, sep any, maxsplit int, fromRight bool) (any, error) {
	var parts []string
	if sep == nil {
		fields := strings.FieldsFunc(s, pyIsSpace)
		if maxsplit >= 0 && len(fields) > maxsplit+1 {
			// Re-split keeping the remainder intact.
			parts = nil
			rest := strings.TrimLeftFunc(s, pyIsSpace)
			if fromRight {
				rest = strings.TrimRightFunc(s, pyIsSpace)
				var rev []string
				for n := 0; n < maxsplit; n++ {
					k := strings.LastIndexFunc(rest, pyIsSpace)
					rev = append(rev, rest[k+1:])
					rest = strings.TrimRightFunc(rest[:k+1], pyIsSpace)
				}
				parts = append(parts, rest)
				for i := len(rev) - 1; i >= 0; i-- {
					parts = append(parts, rev[i])
				}
			} else {
				for n := 0; n < maxsplit; n++ {
					k := strings.IndexFunc(rest, pyIsSpace)
					parts = append(parts, rest[:k])
					rest = strings.TrimLeftFunc(rest[k:], pyIsSpace)
				}
				parts = append(parts, rest)
			}
		} else {
			parts = fields
		}
	} else {
		sp, ok := sep.(string)
		if !ok {
			return nil, errors.New("split: separator must be a string")
		}
		if sp == "" {
			return nil, errors.New("split: empty separator")
		}
		switch {
		case maxsplit < 0:
			parts = strings.Split(s, sp)
		case fromRight:
			all := strings.Split(s, sp)
			if len(all) > maxsplit+1 {
				head := strings.Join(all[:len(all)-maxsplit], sp)
				parts = append([]string{head}, all[len(all)-maxsplit:]...)
			} else {
				parts = all
			}
		default:
			parts = strings.SplitN(s, sp, maxsplit+1)
		}
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

// pyTitle is Python's str.title: a letter after a non-letter is upper
// case, the others lower case.
func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		if unicode.IsLetter(r) {
			if prevCased {
				b.WriteRune(unicode.ToLower(r))
			} else {
				b.WriteRune(unicode.ToTitle(r))
			}
			prevCased = true
		} else {
			b.WriteRune(r)
			prevCased = false
		}
	}
	return b.String()
}

// pyCapitalize is Python's str.capitalize.
func pyCapitalize(s string) string {
	r, w := utf8.DecodeRuneInString(s)
	if w == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[w:])
}

// writeJSON writes v as Python's json.dumps does (the tojson filter of
// transformers: ensure_ascii off unless asked, separators ", " and ": ",
// or "," and ": " with an indent).
func writeJSON(b *strings.Builder, v any, indent, depth int, sortKeys, ascii bool) error {
	v = untuple(v)
	nl := func(d int) {
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*d))
		}
	}
	itemSep := ", "
	if indent >= 0 {
		itemSep = ","
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		switch {
		case math.IsNaN(x):
			b.WriteString("NaN")
		case math.IsInf(x, 1):
			b.WriteString("Infinity")
		case math.IsInf(x, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(pyFloat(x))
		}
	case string:
		writeJSONString(b, x, ascii)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(itemSep)
			}
			nl(depth + 1)
			if err := writeJSON(b, e, indent, depth+1, sortKeys, ascii); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte(']')
	case *Dict:
		if len(x.keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := x.keys
		if sortKeys {
			keys = append([]string{}, keys...)
			sort.Strings(keys)
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(itemSep)
			}
			nl(depth + 1)
			writeJSONString(b, k, ascii)
			b.WriteString(": ")
			if err := writeJSON(b, x.m[k], indent, depth+1, sortKeys, ascii); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte('}')
	case *namespace:
		return writeJSON(b, x.attrs, indent, depth, sortKeys, ascii)
	default:
		return fmt.Errorf("object of type %s is not JSON serializable", typeName(v))
	}
	return nil
}

func writeJSONString(b *strings.Builder, s string, ascii bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(b, `\u%04x`, r)
			case ascii && r > 0x7f:
				if r > 0xFFFF {
					r -= 0x10000
					fmt.Fprintf(b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
