"""CEL source text to a small syntax tree, for llmgw's own static checks of policy rules.

The CEL library (``reconciler.cel``) compiles and runs expressions but shows no syntax tree, and
the checks a rule's author needs before any document is seen (a field the kind's schema does not
have, a string compared with a number, a nested loop over an unbounded list) need one. This
parser follows the grammar of the CEL language definition (cel-spec ``doc/langdef.md``):
conditional, ``||``, ``&&``, relations (``in`` included), additive, multiplicative, unary,
member (select, call, index), primary (identifiers, calls, parentheses, list and map literals,
message construction, literals), and its lexis (comments, decimal and hex integers, ``u``
suffixes, floats, strings in four quotings with ``r`` and ``b`` prefixes and their escapes).

It runs only on expressions the library has already accepted, so its errors are a backstop;
tests check both agree. Pure, bounded: at most ``MAX_LENGTH`` characters, ``MAX_DEPTH`` levels
of nesting (parentheses, calls, literals, unary operators) and a tree at most ``MAX_HEIGHT``
nodes high (a chain such as ``1 + 1 + ...`` or ``a.b.c...`` nests no parentheses but builds a
tall tree, which the recursive checks walk), so no expression can exhaust the stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_LENGTH = 4096
MAX_DEPTH = 48
MAX_HEIGHT = 128  # the checks recurse about 4 frames a level: well within Python's 1,000

RESERVED = frozenset(
    [
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


class SyntaxProblem(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Node:
    offset: int  # where the node starts in the source (0-based)


@dataclass(frozen=True)
class Literal(Node):
    type: str  # int uint double string bytes bool null
    value: Any


@dataclass(frozen=True)
class Ident(Node):
    name: str


@dataclass(frozen=True)
class Select(Node):
    operand: Node
    field: str
    field_offset: int = 0  # where the field's name starts


@dataclass(frozen=True)
class Index(Node):
    operand: Node
    index: Node


@dataclass(frozen=True)
class Call(Node):
    """A function or method call, or an operator (``_+_``, ``!_``, ``_?_:_``, ``_in_`` ...)."""

    function: str
    target: Node | None
    args: tuple[Node, ...]


@dataclass(frozen=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class MapLit(Node):
    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True)
class Struct(Node):
    type_name: str
    fields: tuple[tuple[str, Node], ...] = field(default=())


_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\n\r\f]+|//[^\n]*)
    | (?P<float>(?:[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?
                 |[0-9]+[eE][+-]?[0-9]+
                 |\.[0-9]+(?:[eE][+-]?[0-9]+)?))
    | (?P<hex>0[xX][0-9a-fA-F]+[uU]?)
    | (?P<int>[0-9]+[uU]?)
    | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:'''|\"\"\"|'|\"))
    | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
    | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # float int string ident op end
    text: str
    offset: int
    value: Any = None


def tokenize(source: str) -> list[_Tok]:
    if len(source) > MAX_LENGTH:
        raise SyntaxProblem(f"the expression is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    out: list[_Tok] = []
    i, n = 0, len(source)
    while i < n:
        m = _TOKEN.match(source, i)
        if m is None:
            raise SyntaxProblem(f"unexpected character {source[i]!r}", i)
        kind = m.lastgroup or ""
        if kind == "space":
            i = m.end()
            continue
        if kind == "string":
            tok, i = _string(source, i, m.group())
            out.append(tok)
            continue
        text = m.group()
        if kind == "float":
            out.append(_Tok("double", text, i, float(text)))
        elif kind in ("hex", "int"):
            unsigned = text[-1] in "uU"
            digits = text[:-1] if unsigned else text
            value = int(digits, 16) if kind == "hex" else int(digits)
            out.append(_Tok("uint" if unsigned else "int", text, i, value))
        elif kind == "ident":
            out.append(_Tok("ident", text, i))
        else:
            out.append(_Tok("op", text, i))
        i = m.end()
    out.append(_Tok("end", "", n))
    return out


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}


def _string(source: str, start: int, opener: str) -> tuple[_Tok, int]:
    prefix = opener.rstrip("'\"").lower()
    quote = opener[len(prefix) :]
    raw, is_bytes = "r" in prefix, "b" in prefix
    i = start + len(opener)
    chars: list[str] = []
    triple = len(quote) == 3
    while True:
        if i >= len(source):
            raise SyntaxProblem("a string is not closed", start)
        if source.startswith(quote, i):
            i += len(quote)
            break
        ch = source[i]
        if ch == "\n" and not triple:
            raise SyntaxProblem("a string is not closed before the end of the line", start)
        if ch == "\\" and not raw:
            decoded, i = _escape(source, i)
            chars.append(decoded)
            continue
        chars.append(ch)
        i += 1
    text = "".join(chars)
    value: Any = text.encode("utf-8", "surrogatepass") if is_bytes else text
    return _Tok("bytes" if is_bytes else "string", source[start:i], start, value), i


def _escape(source: str, i: int) -> tuple[str, int]:
    nxt = source[i + 1 : i + 2]
    if nxt in _ESCAPES:
        return _ESCAPES[nxt], i + 2
    for letter, width in (("x", 2), ("X", 2), ("u", 4), ("U", 8)):
        if nxt == letter:
            digits = source[i + 2 : i + 2 + width]
            if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                code = int(digits, 16)
                if code > 0x10FFFF:
                    raise SyntaxProblem(f"\\{letter}{digits} is beyond the last code point", i)
                return chr(code), i + 2 + width
            raise SyntaxProblem(f"\\{letter} needs {width} hexadecimal digits", i)
    digits = source[i + 1 : i + 4]
    if len(digits) == 3 and all(c in "01234567" for c in digits):
        return chr(int(digits, 8)), i + 4
    raise SyntaxProblem(f"unknown escape \\{nxt}", i)


_RELATIONS = {"<": "_<_", "<=": "_<=_", ">": "_>_", ">=": "_>=_", "==": "_==_", "!=": "_!=_"}


def _balanced(function: str, terms: list[Node]) -> Node:
    """``a || b || c || d`` as a balanced tree, as cel-go builds it: a long list of
    alternatives stays shallow (``MAX_HEIGHT``); the order of the terms is kept."""
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    left, right = _balanced(function, terms[:mid]), _balanced(function, terms[mid:])
    return Call(left.offset, function, None, (left, right))


class _Parser:
    def __init__(self, source: str) -> None:
        self.toks = tokenize(source)
        self.pos = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def at(self, text: str) -> bool:
        t = self.tok
        return t.kind in ("op", "ident") and t.text == text

    def take(self, text: str) -> _Tok:
        t = self.tok
        if not self.at(text):
            shown = repr(t.text) if t.kind != "end" else "the end of the expression"
            raise SyntaxProblem(f"expected {text!r}, found {shown}", t.offset)
        self.pos += 1
        return t

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SyntaxProblem(f"nested more than {MAX_DEPTH} levels deep", self.tok.offset)

    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "end":
            raise SyntaxProblem(f"unexpected {self.tok.text!r}", self.tok.offset)
        return node

    def expr(self) -> Node:
        self.deeper()
        cond = self.or_()
        if self.at("?"):
            self.pos += 1
            yes = self.or_()
            self.take(":")
            no = self.expr()
            cond = Call(cond.offset, "_?_:_", None, (cond, yes, no))
        self.depth -= 1
        return cond

    def or_(self) -> Node:
        terms = [self.and_()]
        while self.at("||"):
            self.pos += 1
            terms.append(self.and_())
        return _balanced("_||_", terms)

    def and_(self) -> Node:
        terms = [self.relation()]
        while self.at("&&"):
            self.pos += 1
            terms.append(self.relation())
        return _balanced("_&&_", terms)

    def relation(self) -> Node:
        left = self.addition()
        while True:
            t = self.tok
            if t.kind == "op" and t.text in _RELATIONS:
                function = _RELATIONS[t.text]
            elif t.kind == "ident" and t.text == "in":
                function = "@in"
            else:
                return left
            self.pos += 1
            left = Call(left.offset, function, None, (left, self.addition()))

    def addition(self) -> Node:
        left = self.multiplication()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.tok.text
            self.pos += 1
            left = Call(left.offset, f"_{op}_", None, (left, self.multiplication()))
        return left

    def multiplication(self) -> Node:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "%"):
            op = self.tok.text
            self.pos += 1
            left = Call(left.offset, f"_{op}_", None, (left, self.unary()))
        return left

    def unary(self) -> Node:
        t = self.tok
        if t.kind == "op" and t.text in ("!", "-"):
            self.pos += 1
            self.deeper()
            operand = self.unary()
            self.depth -= 1
            if t.text == "-" and isinstance(operand, Literal) and operand.type in ("int", "double"):
                return Literal(t.offset, operand.type, -operand.value)
            return Call(t.offset, f"{t.text}_", None, (operand,))
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            t = self.tok
            if self.at("."):
                self.pos += 1
                name = self.ident(field=True)
                if self.at("("):
                    node = Call(node.offset, name.text, node, self.args(")"))
                else:
                    node = Select(node.offset, node, name.text, name.offset)
            elif self.at("["):
                self.pos += 1
                self.deeper()
                index = self.expr()
                self.depth -= 1
                self.take("]")
                node = Index(t.offset, node, index)
            else:
                return node

    def ident(self, field: bool = False) -> _Tok:
        """A name; a reserved word only as a ``field`` (after ``.``, or a message field's
        name), where the library accepts it: ``a.if``, ``Foo{as: 1}``."""
        t = self.tok
        if t.kind != "ident":
            raise SyntaxProblem(f"expected a name, found {t.text!r}", t.offset)
        if t.text in RESERVED and not field:
            raise SyntaxProblem(f"`{t.text}` is a reserved word", t.offset)
        self.pos += 1
        return t

    def args(self, closer: str) -> tuple[Node, ...]:
        self.take("(" if closer == ")" else "[")
        self.deeper()
        items: list[Node] = []
        while not self.at(closer):
            items.append(self.expr())
            if not self.at(","):
                break
            self.pos += 1
        self.take(closer)
        self.depth -= 1
        return tuple(items)

    def primary(self) -> Node:
        t = self.tok
        if t.kind in ("int", "uint", "double", "string", "bytes"):
            self.pos += 1
            return Literal(t.offset, t.kind, t.value)
        if t.kind == "ident" and t.text in ("true", "false"):
            self.pos += 1
            return Literal(t.offset, "bool", t.text == "true")
        if t.kind == "ident" and t.text == "null":
            self.pos += 1
            return Literal(t.offset, "null", None)
        if self.at("("):
            self.pos += 1
            self.deeper()
            inner = self.expr()
            self.depth -= 1
            self.take(")")
            return inner
        if self.at("["):
            return ListLit(t.offset, self.args("]"))
        if self.at("{"):
            return MapLit(t.offset, self.map_entries())
        leading = self.at(".")
        if leading:
            self.pos += 1
        name = self.ident()
        if self.at("("):
            return Call(t.offset, name.text, None, self.args(")"))
        qualified = [name.text]
        # a message construction names a (qualified) type: a.b.C{field: value}
        probe = self.pos
        while self.toks[probe].text == "." and self.toks[probe + 1].kind == "ident":
            probe += 2
        if self.toks[probe].text == "{":
            while self.pos < probe:
                self.pos += 1
                qualified.append(self.ident(field=True).text)
            return Struct(t.offset, ".".join(qualified), self.struct_fields())
        return Ident(t.offset, ("." if leading else "") + name.text)

    def map_entries(self) -> tuple[tuple[Node, Node], ...]:
        self.take("{")
        self.deeper()
        entries: list[tuple[Node, Node]] = []
        while not self.at("}"):
            key = self.expr()
            self.take(":")
            entries.append((key, self.expr()))
            if not self.at(","):
                break
            self.pos += 1
        self.take("}")
        self.depth -= 1
        return tuple(entries)

    def struct_fields(self) -> tuple[tuple[str, Node], ...]:
        self.take("{")
        fields: list[tuple[str, Node]] = []
        while not self.at("}"):
            name = self.ident(field=True).text
            self.take(":")
            fields.append((name, self.expr()))
            if not self.at(","):
                break
            self.pos += 1
        self.take("}")
        return tuple(fields)


def parse(source: str) -> Node:
    """The syntax tree of ``source``, or ``SyntaxProblem`` (message, offset)."""
    tree = _Parser(source).parse()
    _check_height(tree)
    return tree


def _check_height(tree: Node) -> None:
    """``SyntaxProblem`` at the first node (bottom up) more than ``MAX_HEIGHT`` high. Iterative,
    as the tree is not yet known to be shallow."""
    heights: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(tree, False)]
    while stack:
        node, visited = stack.pop()
        children = _children(node)
        if not visited:
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        height = 1 + max((heights[id(c)] for c in children), default=0)
        if height > MAX_HEIGHT:
            raise SyntaxProblem(
                f"the expression is more than {MAX_HEIGHT} operations deep; split it up",
                node.offset,
            )
        heights[id(node)] = height


def field_paths(
    tree: Node, roots: frozenset[str] = frozenset({"spec", "metadata"})
) -> list[tuple[str, ...]]:
    """The field paths ``tree`` selects from the documents' parts, in the order written:
    ``spec.safetyGuardrails.contentFiltering`` -> ``('spec', 'safetyGuardrails',
    'contentFiltering')``. A violation is reported at the first of them the document has."""
    found: list[tuple[str, ...]] = []

    def chain(node: Node) -> tuple[str, ...] | None:
        if isinstance(node, Ident):
            return (node.name,) if node.name in roots else None
        if isinstance(node, Select):
            head = chain(node.operand)
            return (*head, node.field) if head is not None else None
        return None

    def walk(node: Node) -> None:
        path = chain(node)
        if path is not None and len(path) > 1:
            if path not in found:
                found.append(path)
            return
        for child in _children(node):
            walk(child)

    walk(tree)
    return found


def _children(node: Node) -> list[Node]:
    if isinstance(node, Select):
        return [node.operand]
    if isinstance(node, Index):
        return [node.operand, node.index]
    if isinstance(node, Call):
        return ([node.target] if node.target is not None else []) + list(node.args)
    if isinstance(node, ListLit):
        return list(node.items)
    if isinstance(node, MapLit):
        return [n for kv in node.entries for n in kv]
    if isinstance(node, Struct):
        return [v for _, v in node.fields]
    return []
