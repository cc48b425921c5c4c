package jinja

import (
	"fmt"
	"strings"
)

// Template is a parsed template.
type Template struct{ body []node }

// Parse parses a template.
func Parse(src string) (*Template, error) {
	segs, err := splitSegments(src)
	if err != nil {
		return nil, err
	}
	p := &parser{segs: segs}
	body, end, err := p.parseBody()
	if err != nil {
		return nil, err
	}
	if end != "" {
		return nil, fmt.Errorf("line %d: unexpected {%% %s %%}", p.lastLine, end)
	}
	return &Template{body: body}, nil
}

// Statement nodes.
type (
	node       any
	textNode   struct{ s string }
	outputNode struct{ e expr }
	ifNode     struct {
		conds  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		targets []string
		iter    expr
		filter  expr
		body    []node
		els     []node
		line    int
	}
	setNode struct {
		names []string // one or more names (tuple unpacking)
		attr  string   // with one name: set name.attr (a namespace)
		value expr     // nil for the block form
		body  []node
		line  int
	}
	breakNode      struct{}
	continueNode   struct{}
	generationNode struct{ body []node }
)

type parser struct {
	segs     []segment
	pos      int
	lastLine int
}

// parseBody parses nodes up to an end-like tag (endfor, else, ...) or the
// end of the template, returning the tag's name (or "").
func (p *parser) parseBody() ([]node, string, error) {
	var out []node
	for p.pos < len(p.segs) {
		s := p.segs[p.pos]
		p.lastLine = s.line
		switch s.kind {
		case segText:
			p.pos++
			out = append(out, textNode{s.text})
		case segOutput:
			p.pos++
			ep := &exprParser{toks: s.toks}
			e, err := ep.parseExpr()
			if err != nil {
				return nil, "", err
			}
			if err := ep.expectEOF(); err != nil {
				return nil, "", err
			}
			out = append(out, outputNode{e})
		case segStmt:
			if len(s.toks) == 0 || s.toks[0].kind != tkName {
				return nil, "", fmt.Errorf("line %d: empty or malformed tag", s.line)
			}
			name := s.toks[0].s
			switch name {
			case "endif", "elif", "else", "endfor", "endset", "endgeneration":
				return out, name, nil
			}
			p.pos++
			n, err := p.parseStmt(name, s)
			if err != nil {
				return nil, "", err
			}
			out = append(out, n)
		}
	}
	return out, "", nil
}

func (p *parser) parseStmt(name string, s segment) (node, error) {
	ep := &exprParser{toks: s.toks, pos: 1}
	switch name {
	case "if":
		n := ifNode{}
		cond, err := ep.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := ep.expectEOF(); err != nil {
			return nil, err
		}
		for {
			body, end, err := p.parseBody()
			if err != nil {
				return nil, err
			}
			n.conds = append(n.conds, cond)
			n.bodies = append(n.bodies, body)
			if end == "" {
				return nil, fmt.Errorf("line %d: if: missing endif", s.line)
			}
			tag := p.take()
			switch end {
			case "elif":
				ep := &exprParser{toks: tag.toks, pos: 1}
				if cond, err = ep.parseExpr(); err != nil {
					return nil, err
				}
				if err := ep.expectEOF(); err != nil {
					return nil, err
				}
				continue
			case "else":
				if n.els, end, err = p.parseBody(); err != nil {
					return nil, err
				}
				if end != "endif" {
					return nil, fmt.Errorf("line %d: if: want endif, got %q", s.line, end)
				}
				p.take()
				return n, nil
			case "endif":
				return n, nil
			}
			return nil, fmt.Errorf("line %d: if: missing endif", s.line)
		}
	case "for":
		n := forNode{line: s.line}
		for {
			t := ep.next()
			if t.kind != tkName {
				return nil, fmt.Errorf("line %d: for: want a name", s.line)
			}
			n.targets = append(n.targets, t.s)
			if !ep.acceptOp(",") {
				break
			}
		}
		if !ep.acceptName("in") {
			return nil, fmt.Errorf("line %d: for: want 'in'", s.line)
		}
		var err error
		if n.iter, err = ep.parseCondless(); err != nil {
			return nil, err
		}
		if ep.acceptName("if") {
			if n.filter, err = ep.parseCondless(); err != nil {
				return nil, err
			}
		}
		if ep.acceptName("recursive") {
			return nil, fmt.Errorf("line %d: for: recursive loops are not supported", s.line)
		}
		if err := ep.expectEOF(); err != nil {
			return nil, err
		}
		body, end, err := p.parseBody()
		if err != nil {
			return nil, err
		}
		n.body = body
		if end == "else" {
			p.take()
			if n.els, end, err = p.parseBody(); err != nil {
				return nil, err
			}
		}
		if end != "endfor" {
			return nil, fmt.Errorf("line %d: for: missing endfor", s.line)
		}
		p.take()
		return n, nil
	case "set":
		n := setNode{line: s.line}
		for {
			t := ep.next()
			if t.kind != tkName {
				return nil, fmt.Errorf("line %d: set: want a name", s.line)
			}
			n.names = append(n.names, t.s)
			if len(n.names) == 1 && ep.acceptOp(".") {
				a := ep.next()
				if a.kind != tkName {
					return nil, fmt.Errorf("line %d: set: want an attribute name", s.line)
				}
				n.attr = a.s
				break
			}
			if !ep.acceptOp(",") {
				break
			}
		}
		if ep.acceptOp("=") {
			var err error
			if n.value, err = ep.parseTuple(); err != nil {
				return nil, err
			}
			if err := ep.expectEOF(); err != nil {
				return nil, err
			}
			return n, nil
		}
		if err := ep.expectEOF(); err != nil {
			return nil, err
		}
		body, end, err := p.parseBody()
		if err != nil {
			return nil, err
		}
		if end != "endset" {
			return nil, fmt.Errorf("line %d: set: missing endset", s.line)
		}
		p.take()
		n.body = body
		return n, nil
	case "break", "continue":
		if err := ep.expectEOF(); err != nil {
			return nil, err
		}
		if name == "break" {
			return breakNode{}, nil
		}
		return continueNode{}, nil
	case "generation":
		if err := ep.expectEOF(); err != nil {
			return nil, err
		}
		body, end, err := p.parseBody()
		if err != nil {
			return nil, err
		}
		if end != "endgeneration" {
			return nil, fmt.Errorf("line %d: generation: missing endgeneration", s.line)
		}
		p.take()
		return generationNode{body}, nil
	}
	return nil, fmt.Errorf("line %d: unsupported tag {%% %s %%}", s.line, name)
}

// take consumes the current (end-like) tag.
func (p *parser) take() segment {
	s := p.segs[p.pos]
	p.pos++
	return s
}

// Expression nodes.
type (
	expr    any
	literal struct{ v any }
	nameRef struct{ name string }
	getAttr struct {
		obj  expr
		attr string
	}
	getItem struct{ obj, key expr }
	slice   struct{ obj, start, stop, step expr }
	call    struct {
		fn     expr
		args   []expr
		kwargs []kwarg
	}
	kwarg struct {
		name string
		v    expr
	}
	filterExpr struct {
		arg    expr
		name   string
		args   []expr
		kwargs []kwarg
		line   int
	}
	testExpr struct {
		arg    expr
		name   string
		args   []expr
		negate bool
		line   int
	}
	unary struct {
		op string
		x  expr
	}
	binary struct {
		op   string
		x, y expr
		line int
	}
	// compareChain is a < b <= c ...: each comparison in turn, as in Python.
	compareChain struct {
		ops      []string
		operands []expr
		line     int
	}
	condExpr  struct{ cond, yes, no expr }
	listExpr  struct{ items []expr }
	tupleExpr struct{ items []expr }
	dictExpr  struct{ keys, values []expr }
)

// exprParser parses an expression with Jinja's precedence, lowest first:
// conditional, or, and, not, comparisons (in, not in, ==, ...), + and -,
// ~, * / // %, **, unary -/+, then primaries with their postfixes
// (.attr, [key], (args)) and filters/tests.
type exprParser struct {
	toks []token
	pos  int
}

func (p *exprParser) peek() token { return p.toks[p.pos] }

func (p *exprParser) next() token {
	t := p.toks[p.pos]
	if t.kind != tkEOF {
		p.pos++
	}
	return t
}

func (p *exprParser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tkOp && t.s == op
}

func (p *exprParser) isName(n string) bool {
	t := p.peek()
	return t.kind == tkName && t.s == n
}

func (p *exprParser) acceptOp(op string) bool {
	if p.isOp(op) {
		p.pos++
		return true
	}
	return false
}

func (p *exprParser) acceptName(n string) bool {
	if p.isName(n) {
		p.pos++
		return true
	}
	return false
}

func (p *exprParser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.peek().line, fmt.Sprintf(format, args...))
}

func (p *exprParser) expectOp(op string) error {
	if !p.acceptOp(op) {
		return p.errorf("want %q, got %s", op, describe(p.peek()))
	}
	return nil
}

func (p *exprParser) expectEOF() error {
	if t := p.peek(); t.kind != tkEOF {
		return p.errorf("unexpected %s", describe(t))
	}
	return nil
}

func describe(t token) string {
	switch t.kind {
	case tkEOF:
		return "end of tag"
	case tkString:
		return fmt.Sprintf("string %q", t.s)
	case tkInt:
		return fmt.Sprintf("number %d", t.i)
	case tkFloat:
		return fmt.Sprintf("number %g", t.f)
	}
	return fmt.Sprintf("%q", t.s)
}

// parseTuple parses an expression or a bare tuple "a, b".
func (p *exprParser) parseTuple() (expr, error) {
	e, err := p.parseExpr()
	if err != nil || !p.isOp(",") {
		return e, err
	}
	items := []expr{e}
	for p.acceptOp(",") {
		if p.peek().kind == tkEOF {
			break
		}
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		items = append(items, x)
	}
	return tupleExpr{items}, nil
}

func (p *exprParser) parseExpr() (expr, error) {
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.acceptName("if") {
		cond, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var no expr = literal{undefined{name: "else branch"}}
		if p.acceptName("else") {
			if no, err = p.parseExpr(); err != nil {
				return nil, err
			}
		}
		e = condExpr{cond, e, no}
	}
	return e, nil
}

// parseCondless parses an expression without a conditional (the iterable
// of a for loop, which may be followed by "if").
func (p *exprParser) parseCondless() (expr, error) { return p.parseOr() }

func (p *exprParser) parseOr() (expr, error) {
	x, err := p.parseAnd()
	for err == nil && p.isName("or") {
		line := p.next().line
		var y expr
		if y, err = p.parseAnd(); err == nil {
			x = binary{"or", x, y, line}
		}
	}
	return x, err
}

func (p *exprParser) parseAnd() (expr, error) {
	x, err := p.parseNot()
	for err == nil && p.isName("and") {
		line := p.next().line
		var y expr
		if y, err = p.parseNot(); err == nil {
			x = binary{"and", x, y, line}
		}
	}
	return x, err
}

func (p *exprParser) parseNot() (expr, error) {
	if p.acceptName("not") {
		x, err := p.parseNot()
		return unary{"not", x}, err
	}
	return p.parseCompare()
}

func (p *exprParser) parseCompare() (expr, error) {
	x, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	var chain compareChain
	for {
		t := p.peek()
		var op string
		switch {
		case t.kind == tkOp && (t.s == "==" || t.s == "!=" || t.s == "<" || t.s == ">" || t.s == "<=" || t.s == ">="):
			op = t.s
			p.next()
		case p.isName("in"):
			op = "in"
			p.next()
		case p.isName("not") && p.toks[p.pos+1].kind == tkName && p.toks[p.pos+1].s == "in":
			op = "not in"
			p.pos += 2
		default:
			if chain.ops == nil {
				return x, nil
			}
			return chain, nil
		}
		y, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		if chain.ops == nil {
			chain.operands = []expr{x}
			chain.line = t.line
		}
		chain.ops = append(chain.ops, op)
		chain.operands = append(chain.operands, y)
	}
}

func (p *exprParser) parseMath1() (expr, error) {
	x, err := p.parseConcat()
	for err == nil && (p.isOp("+") || p.isOp("-")) {
		t := p.next()
		var y expr
		if y, err = p.parseConcat(); err == nil {
			x = binary{t.s, x, y, t.line}
		}
	}
	return x, err
}

func (p *exprParser) parseConcat() (expr, error) {
	x, err := p.parseMath2()
	for err == nil && p.isOp("~") {
		t := p.next()
		var y expr
		if y, err = p.parseMath2(); err == nil {
			x = binary{"~", x, y, t.line}
		}
	}
	return x, err
}

func (p *exprParser) parseMath2() (expr, error) {
	x, err := p.parsePow()
	for err == nil && (p.isOp("*") || p.isOp("/") || p.isOp("//") || p.isOp("%")) {
		t := p.next()
		var y expr
		if y, err = p.parsePow(); err == nil {
			x = binary{t.s, x, y, t.line}
		}
	}
	return x, err
}

func (p *exprParser) parsePow() (expr, error) {
	x, err := p.parseUnary(true)
	for err == nil && p.isOp("**") {
		t := p.next()
		var y expr
		if y, err = p.parseUnary(true); err == nil {
			x = binary{"**", x, y, t.line}
		}
	}
	return x, err
}

func (p *exprParser) parseUnary(withFilter bool) (expr, error) {
	var x expr
	var err error
	switch {
	case p.isOp("-"):
		p.next()
		var y expr
		if y, err = p.parseUnary(false); err != nil {
			return nil, err
		}
		x = unary{"-", y}
	case p.isOp("+"):
		p.next()
		if x, err = p.parseUnary(false); err != nil {
			return nil, err
		}
	default:
		if x, err = p.parsePrimary(); err != nil {
			return nil, err
		}
		if x, err = p.parsePostfix(x); err != nil {
			return nil, err
		}
	}
	if withFilter {
		return p.parseFilters(x)
	}
	return x, nil
}

func (p *exprParser) parsePrimary() (expr, error) {
	t := p.next()
	switch t.kind {
	case tkString:
		s := t.s
		// Adjacent string literals concatenate, as in Python.
		for p.peek().kind == tkString {
			s += p.next().s
		}
		return literal{s}, nil
	case tkInt:
		return literal{int(t.i)}, nil
	case tkFloat:
		return literal{t.f}, nil
	case tkName:
		switch t.s {
		case "true", "True":
			return literal{true}, nil
		case "false", "False":
			return literal{false}, nil
		case "none", "None":
			return literal{nil}, nil
		}
		return nameRef{t.s}, nil
	case tkOp:
		switch t.s {
		case "(":
			if p.acceptOp(")") {
				return tupleExpr{}, nil
			}
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if p.isOp(",") {
				items := []expr{e}
				for p.acceptOp(",") {
					if p.isOp(")") {
						break
					}
					x, err := p.parseExpr()
					if err != nil {
						return nil, err
					}
					items = append(items, x)
				}
				e = tupleExpr{items}
			}
			return e, p.expectOp(")")
		case "[":
			var items []expr
			for !p.isOp("]") {
				x, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				items = append(items, x)
				if !p.acceptOp(",") {
					break
				}
			}
			return listExpr{items}, p.expectOp("]")
		case "{":
			var d dictExpr
			for !p.isOp("}") {
				k, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				d.keys, d.values = append(d.keys, k), append(d.values, v)
				if !p.acceptOp(",") {
					break
				}
			}
			return d, p.expectOp("}")
		}
	}
	return nil, fmt.Errorf("line %d: unexpected %s", t.line, describe(t))
}

func (p *exprParser) parsePostfix(x expr) (expr, error) {
	for {
		switch {
		case p.isOp("."):
			p.next()
			t := p.next()
			switch t.kind {
			case tkName:
				x = getAttr{x, t.s}
			case tkInt:
				x = getItem{x, literal{int(t.i)}}
			default:
				return nil, fmt.Errorf("line %d: want an attribute after '.'", t.line)
			}
		case p.isOp("["):
			p.next()
			var parts [3]expr
			isSlice := false
			for k := 0; k < 3; k++ {
				if !p.isOp(":") && !p.isOp("]") {
					e, err := p.parseExpr()
					if err != nil {
						return nil, err
					}
					parts[k] = e
				}
				if k < 2 && p.acceptOp(":") {
					isSlice = true
					continue
				}
				break
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			if isSlice {
				x = slice{x, parts[0], parts[1], parts[2]}
			} else {
				if parts[0] == nil {
					return nil, p.errorf("empty subscript")
				}
				x = getItem{x, parts[0]}
			}
		case p.isOp("("):
			p.next()
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			x = call{x, args, kwargs}
		default:
			return x, nil
		}
	}
}

// parseArgs parses call arguments after "(" up to and including ")".
func (p *exprParser) parseArgs() ([]expr, []kwarg, error) {
	var args []expr
	var kwargs []kwarg
	for !p.isOp(")") {
		if t := p.peek(); t.kind == tkName && p.toks[p.pos+1].kind == tkOp && p.toks[p.pos+1].s == "=" {
			p.pos += 2
			v, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{t.s, v})
		} else {
			if len(kwargs) > 0 {
				return nil, nil, p.errorf("positional argument after keyword argument")
			}
			v, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, v)
		}
		if !p.acceptOp(",") {
			break
		}
	}
	return args, kwargs, p.expectOp(")")
}

func (p *exprParser) parseFilters(x expr) (expr, error) {
	for {
		switch {
		case p.isOp("|"):
			p.next()
			t := p.next()
			if t.kind != tkName {
				return nil, fmt.Errorf("line %d: want a filter name after '|'", t.line)
			}
			name := t.s
			for p.isOp(".") { // dotted filter names
				p.next()
				name += "." + p.next().s
			}
			f := filterExpr{arg: x, name: name, line: t.line}
			if p.acceptOp("(") {
				var err error
				if f.args, f.kwargs, err = p.parseArgs(); err != nil {
					return nil, err
				}
			}
			x = f
		case p.isName("is"):
			line := p.next().line
			neg := p.acceptName("not")
			t := p.next()
			if t.kind != tkName {
				return nil, fmt.Errorf("line %d: want a test name after 'is'", t.line)
			}
			te := testExpr{arg: x, name: t.s, negate: neg, line: line}
			if t.s == "none" || t.s == "true" || t.s == "false" {
				t.s = strings.ToLower(t.s)
			}
			if p.acceptOp("(") {
				args, _, err := p.parseArgs()
				if err != nil {
					return nil, err
				}
				te.args = args
			} else if nt := p.peek(); nt.kind == tkString || nt.kind == tkInt || nt.kind == tkFloat ||
				nt.kind == tkName && !isKeyword(nt.s) || nt.kind == tkOp && (nt.s == "[" || nt.s == "{") {
				// "x is divisibleby 3", "x is sameas y"
				arg, err := p.parsePrimary()
				if err != nil {
					return nil, err
				}
				if arg, err = p.parsePostfix(arg); err != nil {
					return nil, err
				}
				te.args = []expr{arg}
			}
			x = te
		default:
			return x, nil
		}
	}
}

func isKeyword(s string) bool {
	switch s {
	case "and", "or", "not", "in", "is", "if", "else", "recursive":
		return true
	}
	return false
}
