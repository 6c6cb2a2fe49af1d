"""llmgw's own CEL parser (``reconciler/policy/syntax.py``) against the CEL library.

Covers: a table of valid expressions (every operator and its precedence, ternaries, the macros
all / exists / exists_one / map with 2 and 3 arguments / filter / has, indexing, list and map
literals, message construction, every literal form: decimal, hex and unsigned ints, floats with
exponents, strings in the four quotings with r and b prefixes and the escapes \\n \\x41 \\u00e9
\\U0001F600 \\101, comments, reserved words used as field names) that the library compiles and
``syntax.parse`` must parse too, with the tree shape checked where precedence decides it;
a hypothesis property over a small grammar: library accepts => our parser accepts, and where the
library refuses, our parser answers SyntaxProblem or a tree, never another exception; the depth,
height and length limits (10,000 nested parentheses, 10,000 `!`, long chains of `+`, `.b` and
`[0]`) giving SyntaxProblem and never RecursionError, and checks and field_paths staying within
the stack on the tallest tree the parser accepts; field_paths in the order written.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import cel
from reconciler.errors import ExpressionError
from reconciler.policy import check, pack, syntax
from reconciler.policy.syntax import Call, Ident, Index, ListLit, Literal, MapLit, Select, Struct

VALID = [
    # operators, each level of precedence
    "1 + 2 * 3 - 4 / 5 % 6",
    "a || b && c",
    "a && b || c && d",
    "!a || -b < c",
    "a == b != c",
    "1 < 2 && 2 <= 3 && 3 > 2 && 3 >= 3",
    "1 < 2 == true",
    "x in [1, 2] && 'k' in {'k': 1}",
    "a + b in c",
    "-x.y",
    "!!true",
    "--1",
    "1 - -1",
    "1--1",
    "-(1 + 2)",
    "((((1))))",
    # ternaries
    "a ? b : c",
    "a ? b : c ? d : e",
    "a || b ? c && d : e",
    "(a ? b : c) ? d : e",
    "a ? (b ? c : d) : e",
    # macros
    "[1, 2].all(x, x > 0)",
    "[1, 2].exists(x, x == 2)",
    "[1, 2].exists_one(x, x == 2)",
    "[1, 2].map(x, x * 2)",
    "[1, 2].map(x, x > 1, x * 2)",
    "[1, 2].filter(x, x > 1)",
    "{'a': 1}.all(k, k == 'a')",
    "has(a.b)",
    "has(a.b.c)",
    "has({'a': 1}.a)",
    "x.map(y, y).filter(z, z)",
    "[[1], [2]].all(l, l.all(i, i > 0))",
    # members, calls, indexing
    "a.b.c",
    "a.b()",
    "a.b.c(1, 2)",
    "f()",
    "f(1, 'two', [3])",
    "size('abc') == 3",
    "'abc'.size()",
    "'abc'.startsWith('a')",
    "x[0]",
    "x['k']",
    "a[0][1].b(c)[2]",
    "[1, 2, 3][-1]",
    "{'a': 1}['a']",
    ".x",
    ".x.y",
    "dyn(1)",
    "type(1) == int",
    # literals: lists, maps, messages
    "[]",
    "[1,]",
    "[[[]]]",
    "{}",
    "{'a': 1,}",
    "{1: {2: 3}}",
    "{'a': 1, 'a': 2}",
    "Foo{}",
    "Foo{a: 1, b: 'x'}",
    "Foo{a: 1,}",
    "a.b.Foo{c: 1}",
    ".a.b{c: 1}",
    # literals: numbers
    "0",
    "00",
    "9223372036854775807",
    "-9223372036854775808",
    "0x1F",
    "0x1f == 31",
    "-0x8000000000000000",
    "1u",
    "1U",
    "0x1Fu",
    "18446744073709551615u",
    "1.5",
    "0.0",
    ".5",
    "1.5e3",
    "1e5",
    "1e-3",
    "1E+2",
    "1.5E-3",
    "1.e5",
    # literals: strings and bytes
    "'single'",
    '"double"',
    "'''triple\nsingle'''",
    '"""triple\ndouble"""',
    "'''it's'''",
    '"""say "hi" """',
    r"'\n\t\r\a\b\f\v'",
    r"'\x41' == 'A'",
    r"'\X41'",
    r"'\u00e9' == 'é'",
    r"'\U0001F600'",
    r"'\101' == 'A'",
    r"""'\\ \' \" \` \?'""",
    r"r'\d+'",
    r"R'\w'",
    r'r"""\q"""',
    "b'abc'",
    r"b'\xff'",
    r'B"\101"',
    "br'x'",
    "Br'x'",
    "bR'''x'''",
    "'é ✓ 😀'",
    # booleans, null, comments, whitespace
    "true",
    "false",
    "null == null",
    "1 // a comment\n + 2",
    "true // trailing",
    "\t1\r\n+\f2",
    # reserved words are fine as field, method and message-field names
    "a.if",
    "x.namespace.b",
    "a.while()",
    "Foo{as: 1}",
    "a.if{}",
    "Foo{a: 1}.for",
]


@pytest.mark.parametrize("source", VALID)
def test_every_valid_expression_parses(source: str) -> None:
    cel.compile_expression(source)  # the table itself must hold: the library accepts it
    assert isinstance(syntax.parse(source), syntax.Node)


def test_the_table_is_large() -> None:
    assert len(VALID) >= 80


def _shape(node: syntax.Node) -> object:
    """The tree as nested tuples, for the precedence checks."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Select):
        return (".", _shape(node.operand), node.field)
    if isinstance(node, Index):
        return ("[]", _shape(node.operand), _shape(node.index))
    if isinstance(node, Call):
        target = () if node.target is None else (_shape(node.target),)
        return (node.function, *target, *(_shape(a) for a in node.args))
    if isinstance(node, ListLit):
        return ("list", *(_shape(i) for i in node.items))
    if isinstance(node, MapLit):
        return ("map", *((_shape(k), _shape(v)) for k, v in node.entries))
    if isinstance(node, Struct):
        return ("struct", node.type_name, *((k, _shape(v)) for k, v in node.fields))
    raise AssertionError(node)


@pytest.mark.parametrize(
    ("source", "shape"),
    [
        ("1 + 2 * 3", ("_+_", 1, ("_*_", 2, 3))),
        ("1 - 2 - 3", ("_-_", ("_-_", 1, 2), 3)),
        ("a || b && c", ("_||_", "a", ("_&&_", "b", "c"))),
        ("!a && b", ("_&&_", ("!_", "a"), "b")),
        ("a < b == c", ("_==_", ("_<_", "a", "b"), "c")),
        ("a + b in c", ("@in", ("_+_", "a", "b"), "c")),
        ("a ? b : c ? d : e", ("_?_:_", "a", "b", ("_?_:_", "c", "d", "e"))),
        ("a || b ? c : d", ("_?_:_", ("_||_", "a", "b"), "c", "d")),
        ("-x.y", ("-_", (".", "x", "y"))),
        ("-1", -1),
        ("-1.5", -1.5),
        ("a.b(c)[0]", ("[]", ("b", "a", "c"), 0)),
        ("x.map(v, v > 1, v)", ("map", "x", "v", ("_>_", "v", 1), "v")),
        ("0x1Fu", 31),
        ("'\\x41\\u00e9\\U0001F600\\101\\n'", "Aé😀A\n"),
        ("r'\\n'", "\\n"),
        ("b'A\\x42'", b"AB"),
        ("{'k': [1]}", ("map", ("k", ("list", 1)))),
        ("a.b.C{d: 1}", ("struct", "a.b.C", ("d", 1))),
        ("a.if", (".", "a", "if")),
        ("a && b && c && d", ("_&&_", ("_&&_", "a", "b"), ("_&&_", "c", "d"))),
    ],
)
def test_tree_shapes(source: str, shape: object) -> None:
    cel.compile_expression(source)
    assert _shape(syntax.parse(source)) == shape


def test_literal_types() -> None:
    types = {
        "1": "int",
        "0x1": "int",
        "1u": "uint",
        "0x1U": "uint",
        "1.0": "double",
        "1e3": "double",
        ".5": "double",
        "'s'": "string",
        "b's'": "bytes",
        "true": "bool",
        "null": "null",
    }
    for source, kind in types.items():
        node = syntax.parse(source)
        assert isinstance(node, Literal) and node.type == kind, source


def test_offsets_point_at_the_source() -> None:
    tree = syntax.parse("spec.a == 'x' && spec.b")
    assert isinstance(tree, Call)
    right = tree.args[1]
    assert isinstance(right, Select) and right.offset == 17 and right.field_offset == 22


# --- property: library accepts => we accept; we never crash ------------------------------------

_NAMES = ["x", "y", "spec", "a_1", "_b", "inx", "trueish"]
_FIELDS = [*_NAMES, "if", "while", "namespace", "as", "for", "in_"]
_ESCAPES = ["\\n", "\\t", "\\\\", "\\'", '\\"', "\\x41", "\\u00e9", "\\U0001F600", "\\101", "\\`"]
_QUOTES = ["'", '"', "'''", '"""']


def _strings() -> st.SearchStrategy[str]:
    body = st.lists(st.sampled_from(["a", " ", "é", "1", *_ESCAPES]), max_size=4).map("".join)
    raw_body = st.lists(st.sampled_from(["a", " ", "\\d", "é"]), max_size=4).map("".join)
    cooked = st.tuples(st.sampled_from(["", "b", "B"]), st.sampled_from(_QUOTES), body)
    raw = st.tuples(st.sampled_from(["r", "R", "br", "Br"]), st.sampled_from(_QUOTES), raw_body)
    return (cooked | raw).map(lambda t: f"{t[0]}{t[1]}{t[2]}{t[1]}")


def _numbers() -> st.SearchStrategy[str]:
    exponent = st.sampled_from(["", "e5", "E-3", "e+2"])
    return st.one_of(
        st.integers(0, 2**63 - 1).map(str),
        st.integers(0, 2**64 - 1).map(lambda n: f"{n}u"),
        st.integers(0, 2**63 - 1).map(hex),
        st.integers(0, 2**64 - 1).map(lambda n: f"{n:#X}U".replace("0X", "0x")),
        st.tuples(st.integers(0, 999), st.integers(0, 999), exponent).map(
            lambda t: f"{t[0]}.{t[1]}{t[2]}"
        ),
        st.tuples(st.integers(0, 99), st.sampled_from(["e5", "E-3"])).map(
            lambda t: f"{t[0]}{t[1]}"
        ),
        st.integers(0, 999).map(lambda n: f".{n}"),
    )


_ATOMS = st.one_of(
    _numbers(),
    _strings(),
    st.sampled_from(["true", "false", "null", *_NAMES, *("." + n for n in _NAMES)]),
)
_BINARY = ["||", "&&", "==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%"]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    args = st.lists(inner, max_size=2).map(", ".join)
    macro = st.sampled_from(["all", "exists", "exists_one", "filter", "map"])
    return st.one_of(
        st.tuples(inner, st.sampled_from(_BINARY), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(st.sampled_from(["!", "-", "!!", "--"]), inner).map(lambda t: t[0] + t[1]),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
        inner.map(lambda s: f"({s})"),
        st.tuples(inner, st.sampled_from(_FIELDS)).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(inner, inner), max_size=2).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
        st.tuples(macro, inner, inner).map(lambda t: f"({t[1]}).{t[0]}(v, {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]}).map(v, {t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(_NAMES), st.sampled_from(_FIELDS)).map(
            lambda t: f"has({t[0]}.{t[1]})"
        ),
        st.tuples(st.sampled_from(["size", "f", "int"]), args).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.sampled_from(["size", "startsWith", "if"]), args).map(
            lambda t: f"({t[0]}).{t[1]}({t[2]})"
        ),
        st.tuples(inner, st.sampled_from(["// c\n", "\n", "\t"]), inner).map(
            lambda t: f"{t[0]} +{t[1]}{t[2]}"
        ),
        st.tuples(
            st.sampled_from(["Foo", "a.b.Foo", ".Foo"]),
            st.lists(st.tuples(st.sampled_from(_FIELDS), inner), max_size=2),
        ).map(lambda t: t[0] + "{" + ", ".join(f"{k}: {v}" for k, v in t[1]) + "}"),
    )


EXPRESSIONS = st.recursive(_ATOMS, _extend, max_leaves=10)


def _library_accepts(source: str) -> bool:
    try:
        cel.compile_expression(source)
    except ExpressionError:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_library_accepts_implies_we_accept(source: str) -> None:
    if _library_accepts(source):
        syntax.parse(source)  # a SyntaxProblem here fails the test
    else:
        try:
            syntax.parse(source)
        except syntax.SyntaxProblem:
            pass


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("()[]{}.,:?!-+*/%<>=&|'\"\\ \nabrux019_")), max_size=40)
)
def test_any_text_gives_a_tree_or_a_syntax_problem(source: str) -> None:
    try:
        syntax.parse(source)
    except syntax.SyntaxProblem as exc:
        assert 0 <= exc.offset <= len(source) and exc.message


@pytest.mark.parametrize(
    "source",
    [
        "",
        "1 +",
        "(1",
        "[1",
        "{'a' 1}",
        "a.",
        "a..b",
        "a[]",
        "f(,)",
        "'open",
        "'''open",
        "'a\nb'",
        r"'\z'",
        r"'\x4'",
        r"'\u12'",
        r"'\U00110000'",
        r"'\UFFFFFFFF'",
        "@",
        "#",
        "`a`",
        "if",
        "x.all(if, true)",
        "a ? b ? c : d : e",
        "1 ? 2",
        "0x",
        "1e",
        "a.1",
        "x.?y",
        "[?x]",
    ],
)
def test_refused_expressions_give_syntax_problem(source: str) -> None:
    try:
        syntax.parse(source)
    except syntax.SyntaxProblem as exc:
        assert exc.message and 0 <= exc.offset <= len(source)


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "(" * 10_000 + "1" + ")" * 10_000,
        "!" * 10_000 + "true",
        "(" * 2_000 + "1" + ")" * 2_000,
        "!" * 4_000 + "true",
        "-" * 4_000 + "1",
        "[" * 2_000 + "]" * 2_000,
        "{'a': " * 600 + "1" + "}" * 600,
        "f(" * 2_000 + ")" * 2_000,
        "x" + ".b" * 1_900,
        "+".join(["1"] * 1_900),
        "x" + "[0]" * 1_300,
        "x" + ".f()" * 900,
        "'a' + " * 800 + "'a'",
        "x" + ".all(v, v" * 400 + ")" * 400,
        "a" * 5_000,
    ],
)
def test_limits_give_syntax_problem_never_recursion_error(source: str) -> None:
    with pytest.raises(syntax.SyntaxProblem) as caught:
        syntax.parse(source)
    assert "deep" in caught.value.message or "longer than" in caught.value.message


def test_a_long_list_of_alternatives_stays_shallow() -> None:
    """`a || b || ...` is built balanced: 150 alternatives parse and check."""
    source = " || ".join(f"spec.model == 'm{i}'" for i in range(150))
    assert len(source) < syntax.MAX_LENGTH
    tree = syntax.parse(source)
    assert check.check(tree, {"Prompt": pack._variables()["Prompt"]}) == []
    assert syntax.field_paths(tree) == [("spec", "model")]


@pytest.mark.parametrize(
    "build",
    [
        lambda n: "+".join(["1"] * n) + " > 0",
        lambda n: "metadata.labels" + ".b" * (n - 2) + " == 'x'",
        lambda n: "metadata.labels" + "['a']" * (n - 2) + " == 'x'",
        lambda n: "spec.fallbackModels" + ".filter(m, true)" * (n - 3) + ".size() > 0",
    ],
    ids=["plus", "select", "index", "filter"],
)
def test_the_tallest_accepted_tree_is_checked_within_the_stack(
    build: Callable[[int], str],
) -> None:
    """Just below MAX_HEIGHT, the recursive checker and field_paths must not overflow."""
    n = syntax.MAX_HEIGHT + 1
    while True:
        source = build(n)
        try:
            tree = syntax.parse(source)
            break
        except syntax.SyntaxProblem:
            n -= 1
    assert n > syntax.MAX_HEIGHT // 2
    variables = {k: v for k, v in pack._variables().items() if k == "Prompt"}
    check.check(tree, variables)
    syntax.field_paths(tree)


def test_field_paths_in_the_order_written() -> None:
    tree = syntax.parse(
        "metadata.labels.team == 'a' && spec.temperature < 1.0 "
        "&& spec.fallbackModels.all(m, m != spec.model) && metadata.labels.team != 'b'"
    )
    assert syntax.field_paths(tree) == [
        ("metadata", "labels", "team"),
        ("spec", "temperature"),
        ("spec", "fallbackModels"),
        ("spec", "model"),
    ]
