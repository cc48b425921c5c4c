#!/usr/bin/env python3
"""Reference renderings for gotune's Jinja subset (tokenizer/jinja).

Renders the chat templates of the fixture tokenizers (qwen3, llama3) over a
set of conversations, and small templates exercising each Jinja feature the
package supports, with Jinja2 configured as transformers'
apply_chat_template configures it (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loop controls, its tojson, raise_exception and
strftime_now, and a {% generation %} tag that only renders its body).

Run from tokenizer/testdata:  python3 gen_jinja_golden.py
Writes jinja_golden.json; the Go tests only read that file.
"""
import json
import os

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Generation(Extension):
    """{% generation %}...{% endgeneration %} renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def render(template, variables):
    try:
        return {"output": environment().from_string(template).render(**variables)}
    except Exception as e:  # the Go renderer must fail too
        return {"error": type(e).__name__ + ": " + str(e)}


CONVERSATIONS = {
    "user": [{"role": "user", "content": "What is 2+2?"}],
    "system_user": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
    ],
    "user_assistant": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ],
    "multi_turn": [
        {"role": "system", "content": "Be helpful."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Summarize: the cat sat on the mat."},
        {"role": "assistant", "content": "A cat sat on a mat."},
    ],
    "thinking": [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "<think>\nIt has no divisors but 1 and 7.\n</think>\n\nYes."},
        {"role": "user", "content": "And 9?"},
        {"role": "assistant", "content": "<think>\n3 divides 9.\n</think>\n\nNo."},
    ],
    "whitespace": [
        {"role": "user", "content": "  padded question \n\n"},
        {"role": "assistant", "content": "\n answer with spaces  "},
    ],
    "unicode": [
        {"role": "user", "content": "Traduis « bonjour » en 日本語 🤖"},
        {"role": "assistant", "content": "こんにちは"},
    ],
    "tools": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "tool", "content": "{\"temp\": 18}"},
        {"role": "tool", "content": "{\"sky\": \"clear\"}"},
        {"role": "assistant", "content": "18 degrees and clear."},
    ],
    "empty_content": [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
    ],
}

# Small templates, one Jinja feature (or a few) each.
FEATURES = {
    "text": ("plain text\nwith lines\n", {}),
    "output": ("{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}|{{ f }}|{{ g }}|{{ h }}", {
        "a": "s", "b": 3, "c": 2.5, "d": None, "e": True, "f": [1, "x", None], "g": {"k": [1.0, False]}, "h": 1e-7}),
    "undefined_prints_empty": ("[{{ missing }}]", {}),
    "whitespace_dash": ("a  {{- 'b' -}}  c\n  {%- if true -%}  d  {%- endif -%}\n e", {}),
    "trim_lstrip_blocks": ("x\n    {% if true %}\n    y\n    {% endif %}\nz\n", {}),
    "lstrip_same_line": ("a {% if true %}b{% endif %} c\n  {% if true %} d {% endif %}\n", {}),
    "lstrip_plus": ("x\n    {%+ if true %}y{% endif %}\n", {}),
    "comment": ("a\n  {# note #}\nb {#- c -#} d", {}),
    "raw": ("{% raw %}{{ not evaluated }}{% endraw %}!", {}),
    "for_loop_vars": ("{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}:{{ x }}\n{% endfor %}", {"xs": ["a", "b", "c"]}),
    "for_else": ("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
    "for_filter": ("{% for x in xs if x % 2 == 0 %}{{ x }}{{ ',' if not loop.last }}{% endfor %}", {"xs": [1, 2, 3, 4, 5, 6]}),
    "for_unpack": ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2}}),
    "for_dict_keys": ("{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "y": 2}}),
    "break_continue": ("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    "nested_loops": ("{% for a in xs %}{% for b in xs %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {"xs": [1, 2]}),
    "set_scope": ("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}/{{ x }}", {}),
    "set_if_scope": ("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    "namespace": ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    "set_block": ("{% set greeting %}Hello {{ name }}{% endset %}[{{ greeting }}]", {"name": "Ana"}),
    "set_tuple": ("{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
    "if_elif_else": ("{% for n in [0, 1, 2, 3] %}{% if n == 0 %}zero{% elif n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}", {}),
    "cond_expr": ("{{ 'y' if t else 'n' }}{{ 'y' if f else 'n' }}[{{ 'only' if f }}]", {"t": 1, "f": 0}),
    "and_or_not": ("{{ a and b }} {{ a or b }} {{ not a }} {{ c or 'dflt' }} {{ a and not c }}", {"a": "A", "b": "B", "c": ""}),
    "arithmetic": ("{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ -x }} {{ 3 - -2 }}", {"x": 4}),
    "precedence": ("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'a' ~ 2 * 3 }} {{ xs|length - 1 }} {{ not 1 == 2 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }}", {"xs": [1, 2, 3]}),
    "error_concat_precedence": ("{{ 'a' ~ 1 + 2 }}", {}),
    "compare": ("{{ 1 < 2 }} {{ 2 <= 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ [1,2] == [1,2] }} {{ 3 > 2 > 1 }}", {}),
    "in_operator": ("{{ 'b' in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ 3 not in [1] }}", {"d": {"k": 1}}),
    "concat": ("{{ 'a' ~ 1 ~ none ~ true }}{{ 'x' + 'y' }}{{ [1] + [2] }}", {}),
    "literals": ("{{ [1, 'two', 3.0, none, true] }} {{ {'a': 1, 'b': [2]} }} {{ (1, 2) }} {{ \"dq\\t\\u00e9\" }} {{ 'it''s' }}", {}),
    "string_repr": ("{{ [\"it's\", 'say \"hi\"', 'back\\\\slash\\n'] }}", {}),
    "slices": ("{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[-2:] }} {{ xs[::2] }} {{ s[1:3] }} {{ s[::-1] }} {{ xs[-1] }} {{ s[0] }} {{ xs[5:1:-1] }} {{ xs[1:-1] }}", {"xs": [1, 2, 3, 4, 5], "s": "héllo"}),
    "attr_and_item": ("{{ m.role }} {{ m['content'] }} {{ m.get('x', 'dflt') }} {{ m.missing is defined }} {{ xs[0].a }} {{ m.items()|list }}", {"m": {"role": "user", "content": "hi"}, "xs": [{"a": 1}]}),
    "string_methods": ("{{ s.startswith('ab') }} {{ s.endswith(('x', 'yz')) }} {{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ s.capitalize() }} {{ s.replace('b', 'B') }} {{ s.find('c') }} {{ s.count('b') }} {{ '-'.join(['a','b']) }}", {"s": "abc xyz abc"}),
    "strip_split": ("[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ s.strip(' \\n') }}][{{ t.split('</think>')[-1].lstrip('\\n') }}][{{ t.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}] {{ 'a b  c'.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}", {"s": " \n hi there \t\n", "t": "<think>\nreason\n</think>\n\nanswer"}),
    "filters_basic": ("{{ xs|length }} {{ s|length }} {{ s|upper }} {{ s|lower }} {{ s|title }} {{ s|capitalize }} {{ '  t  '|trim }} {{ xs|first }} {{ xs|last }} {{ xs|join('-') }} {{ xs|reverse|list }} {{ xs|sort }} {{ xs|sort(reverse=true) }} {{ [1,1,2]|unique|list }} {{ xs|sum }} {{ xs|min }} {{ xs|max }}", {"xs": [3, 1, 2], "s": "mIxEd case"}),
    "filters_convert": ("{{ '42'|int + 1 }} {{ 'x'|int }} {{ 3.9|int }} {{ '2.5'|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 7|string ~ '!' }} {{ none|string }} {{ 'abc'|list }}", {}),
    "filters_default": ("{{ missing|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|default('d') }} {{ x|d('e') }}", {"x": 0}),
    "filters_replace": ("{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }}", {}),
    "filters_select": ("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ ms|rejectattr('role', 'eq', 'user')|list|length }} {{ [0,1,2,'',none]|select|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ ms|map(attribute='role')|join(',') }} {{ ['a','b']|map('upper')|list }} {{ ms|selectattr('tool')|list }}", {"ms": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]}),
    "filters_dict": ("{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by='value') }} {{ d|length }}", {"d": {"b": 2, "a": 3, "c": 1}}),
    "tojson": ("{{ v|tojson }}\n{{ v|tojson(indent=2) }}\n{{ 'é\"\\n'|tojson }}\n{{ v|tojson(sort_keys=true) }}\n{{ []|tojson }} {{ {}|tojson(indent=2) }} {{ 1.0|tojson }}", {"v": {"name": "f", "params": {"x": [1, 2.5, None, True], "y": "ü"}}}),
    "tests": ("{{ x is defined }} {{ y is undefined }} {{ n is none }} {{ x is not none }} {{ x is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ d is mapping }} {{ xs is iterable }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ true is boolean }} {{ 'ab' is lower }} {{ x is eq 'v' }} {{ 2 is in [1,2] }}", {"x": "v", "n": None, "d": {}, "xs": []}),
    "range": ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }}", {}),
    "loop_cycle_prev_next": ("{% for x in xs %}{{ loop.cycle('a', 'b') }}{{ loop.previtem }}{{ loop.nextitem }}|{% endfor %}", {"xs": [1, 2, 3]}),
    "messages_reverse": ("{% for m in messages[::-1] %}{{ (messages|length - 1) - loop.index0 }}:{{ m.role }} {% endfor %}", {"messages": [{"role": "a"}, {"role": "b"}, {"role": "c"}]}),
    "raise_exception": ("{% if x %}{{ raise_exception('bad input: ' ~ x) }}{% endif %}", {"x": "boom"}),
    "generation_tag": ("{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
    "error_undefined_attr": ("{{ missing.attr }}", {}),
    "error_bad_add": ("{{ 'a' + 1 }}", {}),
    "error_unknown_filter": ("{{ 'a'|nosuchfilter }}", {}),
    "multiline_tags": ("{%- for x in xs\n   if x -%}\n{{- x\n  -}}\n{%- endfor -%}\n", {"xs": [1, 0, 2]}),
    "trailing_newline_kept_inside": ("a\n{% if true %}\nb\n{% endif %}\n\n", {}),
    "crlf": ("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    cases = []
    for fixture in ("qwen3", "llama3"):
        with open(os.path.join(here, fixture, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        template = cfg["chat_template"]
        specials = {k: cfg.get(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
        for name, messages in CONVERSATIONS.items():
            for gen in (False, True):
                variables = dict(specials, messages=messages, tools=None, documents=None, add_generation_prompt=gen)
                case = {"name": f"{fixture}/{name}/gen={gen}", "fixture": fixture, "vars": variables}
                case.update(render(template, variables))
                cases.append(case)
        if fixture == "qwen3":
            variables = dict(specials, messages=CONVERSATIONS["user"], tools=None, documents=None,
                             add_generation_prompt=True, enable_thinking=False)
            case = {"name": "qwen3/user/no_thinking", "fixture": fixture, "vars": variables}
            case.update(render(template, variables))
            cases.append(case)
    for name, (template, variables) in FEATURES.items():
        case = {"name": "feature/" + name, "template": template, "vars": variables}
        case.update(render(template, variables))
        cases.append(case)
    with open(os.path.join(here, "jinja_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"jinja2_version": jinja2.__version__, "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
