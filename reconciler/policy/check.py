"""Static checks of a rule's CEL expression against the JSON Schemas of the kinds it matches.

A rule must never fail at run time for a reason visible in its text. Before any document is
read, every expression is checked here against each kind the rule matches:

- every name is declared (``spec``, ``metadata``, ``kind``, ``apiVersion``, ``env``, and the
  variables its macros bind);
- every field it selects exists in the kind's schema (``spec.temprature`` is an error naming
  the closest field), and a selection on a string or a number is refused;
- operators and functions get operands of types they accept (a string compared with a number,
  ``&&`` on a string, an unknown function, a wrong number of arguments);
- a string literal compared with a field that has an enumeration is one of its values;
- a literal regular expression given to ``matches`` compiles;
- the whole expression is a boolean (a ``messageExpression`` a string);
- its cost is bounded: loops (``all``, ``exists``, ``map``...) nested over lists multiply their
  sizes (a list's ``maxItems``, else ``UNBOUNDED_ITEMS``), and the product must stay within
  ``COST_BUDGET``; the error names each loop and its list, so the cost can be traced.

Schema types map to CEL types: ``string`` and string enumerations to string, ``integer`` to int,
``number`` to a number that compares with ints and doubles alike, ``boolean`` to bool, ``array``
to a list of its items, an ``object`` with ``properties`` to an object whose fields are known,
and one with only ``additionalProperties`` (labels, annotations) to a map of strings. Anything
else is ``dyn``, checked only at run time. Pure: no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import cel
from reconciler.policy.syntax import (
    Call,
    Ident,
    Index,
    ListLit,
    Literal,
    MapLit,
    Node,
    Select,
    Struct,
)

UNBOUNDED_ITEMS = 10_000  # the size assumed for a list whose schema sets no maxItems
COST_BUDGET = 1_000_000  # loop iterations one rule may need on one document, at most


@dataclass(frozen=True)
class T:
    """A CEL type as far as the checks need it. ``tag``: dyn null bool int uint double number
    string bytes list map object timestamp duration type. ``fields`` of an object map a name
    to its type; ``enum`` of a string lists its allowed values; ``items`` is a list's element
    (or a map's value) type; ``bound`` a list's largest size; ``where`` the schema path, for
    messages."""

    tag: str
    items: T | None = None
    fields: Mapping[str, T] | None = None
    enum: tuple[str, ...] = ()
    bound: int = UNBOUNDED_ITEMS
    where: str = ""

    def __str__(self) -> str:
        if self.tag == "list" and self.items is not None:
            return f"list of {self.items}"
        if self.tag == "map" and self.items is not None:
            return f"map of {self.items}"
        return {"object": "object", "number": "number", "double": "double"}.get(self.tag, self.tag)


DYN = T("dyn")
BOOL = T("bool")
INT = T("int")
UINT = T("uint")
DOUBLE = T("double")
STRING = T("string")
BYTES = T("bytes")
NULL = T("null")
TIMESTAMP = T("timestamp")
DURATION = T("duration")
TYPE = T("type")
NUMERIC = frozenset({"int", "uint", "double", "number"})


def from_schema(node: Any, where: str = "") -> T:
    """The CEL type of values ``node`` (a JSON Schema) accepts."""
    if not isinstance(node, dict):
        return DYN
    if "const" in node:
        return _of_value(node["const"], where)
    if isinstance(node.get("enum"), list):
        values = node["enum"]
        if values and all(isinstance(v, str) for v in values):
            return T("string", enum=tuple(values), where=where)
        return DYN
    kind = node.get("type")
    if kind == "string":
        return T("string", where=where)
    if kind == "integer":
        return T("int", where=where)
    if kind == "number":
        return T("number", where=where)
    if kind == "boolean":
        return T("bool", where=where)
    if kind == "array":
        bound = node.get("maxItems")
        items = node.get("items")
        enum = items.get("enum") if isinstance(items, dict) else None
        if isinstance(enum, list) and not bound and node.get("uniqueItems"):
            bound = len(enum)
        return T(
            "list",
            items=from_schema(items, f"{where}[]"),
            bound=bound if isinstance(bound, int) else UNBOUNDED_ITEMS,
            where=where,
        )
    if kind == "object":
        props = node.get("properties")
        if isinstance(props, dict) and props:
            fields = {k: from_schema(v, f"{where}.{k}" if where else k) for k, v in props.items()}
            return T("object", fields=fields, where=where)
        extra = node.get("additionalProperties")
        return T("map", items=from_schema(extra, f"{where}[]") if extra else DYN, where=where)
    return DYN


def _of_value(value: Any, where: str) -> T:
    if isinstance(value, bool):
        return T("bool", where=where)
    if isinstance(value, str):
        return T("string", enum=(value,), where=where)
    if isinstance(value, int):
        return T("int", where=where)
    if isinstance(value, float):
        return T("double", where=where)
    return DYN


def document_type(kind_schema: dict[str, Any]) -> dict[str, T]:
    """The variables a rule sees for one kind: the document's parts, typed by its schema."""
    props = kind_schema.get("properties", {})
    return {
        "apiVersion": STRING,
        "kind": STRING,
        "metadata": from_schema(props.get("metadata"), "metadata"),
        "spec": from_schema(props.get("spec"), "spec"),
        "env": STRING,
    }


@dataclass(frozen=True)
class Finding:
    """One error of a check: ``offset`` into the expression's text."""

    message: str
    offset: int
    fix: str = ""


@dataclass
class _Loop:
    what: str  # e.g. "all over spec.fewShot.examples"
    bound: int


class _Stop(Exception):
    def __init__(self, finding: Finding) -> None:
        self.finding = finding


# Functions the CEL library provides, by name: each overload is (target, args, result), with
# target None for a global function. ``tests/test_policy_check.py`` runs each through the
# library, so this table can only name what it really has.
_NUM = T("number")
_FUNCTIONS: dict[str, list[tuple[T | None, tuple[T, ...], T]]] = {
    "size": [
        (None, (STRING,), INT),
        (None, (BYTES,), INT),
        (None, (T("list"),), INT),
        (None, (T("map"),), INT),
        (STRING, (), INT),
        (BYTES, (), INT),
        (T("list"), (), INT),
        (T("map"), (), INT),
    ],
    "matches": [(STRING, (STRING,), BOOL)],
    "startsWith": [(STRING, (STRING,), BOOL)],
    "endsWith": [(STRING, (STRING,), BOOL)],
    "contains": [(STRING, (STRING,), BOOL)],
    "int": [(None, (_NUM,), INT), (None, (STRING,), INT)],
    "uint": [(None, (_NUM,), UINT), (None, (STRING,), UINT)],
    "double": [(None, (_NUM,), DOUBLE), (None, (STRING,), DOUBLE)],
    # not string(bool), string(list), string(map), string(null): the library has none of them
    "string": [(None, (t,), STRING) for t in (_NUM, STRING, BYTES, TIMESTAMP, DURATION)],
    "bytes": [(None, (STRING,), BYTES), (None, (BYTES,), BYTES)],
    "dyn": [(None, (DYN,), DYN)],
    "type": [(None, (DYN,), TYPE)],
    "timestamp": [(None, (STRING,), TIMESTAMP)],
    "duration": [(None, (STRING,), DURATION)],
}
for _getter in (
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
):
    _FUNCTIONS[_getter] = [(TIMESTAMP, (), INT)]
_FUNCTIONS["getHours"] = [(TIMESTAMP, (), INT), (DURATION, (), INT)]
for _getter in ("getMinutes", "getSeconds", "getMilliseconds"):
    _FUNCTIONS[_getter].append((DURATION, (), INT))
MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
TYPE_NAMES = {
    "int": TYPE,
    "uint": TYPE,
    "double": TYPE,
    "string": TYPE,
    "bytes": TYPE,
    "bool": TYPE,
    "list": TYPE,
    "map": TYPE,
    "null_type": TYPE,
    "type": TYPE,
}


def functions() -> dict[str, list[tuple[T | None, tuple[T, ...], T]]]:
    """The function table (for the test that runs each through the library)."""
    return _FUNCTIONS


class Checker:
    """Checks one expression against one kind's variables. ``check`` returns the first error
    (the one to fix first) or None, and ``loops`` the loops it found, for the cost."""

    def __init__(self, variables: Mapping[str, T], kind: str) -> None:
        self.scopes: list[dict[str, T]] = [dict(variables)]
        self.kind = kind
        self.loops: list[_Loop] = []
        self.worst: tuple[int, list[_Loop]] = (1, [])

    def check(self, node: Node, want: str) -> Finding | None:
        try:
            got = self.type_of(node)
        except _Stop as stop:
            return stop.finding
        if got.tag not in (want, "dyn"):
            what = "true or false" if want == "bool" else "a string"
            return Finding(f"the expression gives {_a(got)}, not {what}", node.offset)
        cost, chain = self.worst
        if cost > COST_BUDGET:
            loops = ", inside ".join(f"{lp.what} (up to {lp.bound:,})" for lp in reversed(chain))
            return Finding(
                f"may need {cost:,} loop iterations per document, more than the budget of "
                f"{COST_BUDGET:,}: {loops}",
                node.offset,
                "loop over fewer items, or over lists whose schema sets maxItems; "
                f"a list without maxItems counts as {UNBOUNDED_ITEMS:,}",
            )
        return None

    def fail(self, message: str, node: Node, fix: str = "") -> _Stop:
        return _Stop(Finding(message, node.offset, fix))

    def lookup(self, name: str) -> T | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def type_of(self, node: Node) -> T:
        if isinstance(node, Literal):
            return {
                "int": INT,
                "uint": UINT,
                "double": DOUBLE,
                "string": T("string", enum=(node.value,)),
                "bytes": BYTES,
                "bool": BOOL,
                "null": NULL,
            }[node.type]
        if isinstance(node, Ident):
            found = self.lookup(node.name.lstrip("."))
            if found is not None:
                return found
            if node.name in TYPE_NAMES:
                return TYPE_NAMES[node.name]
            names = [n for scope in self.scopes for n in scope]
            close = difflib.get_close_matches(node.name, names, n=1)
            fix = f"did you mean `{close[0]}`?" if close else "names: " + ", ".join(names)
            raise self.fail(f"undeclared name `{node.name}`", node, fix)
        if isinstance(node, Select):
            return self.select(node)
        if isinstance(node, Index):
            return self.index(node)
        if isinstance(node, ListLit):
            items = [self.type_of(i) for i in node.items]
            return T("list", items=_join(items), bound=max(len(items), 1))
        if isinstance(node, MapLit):
            for k, v in node.entries:
                self.type_of(k)
                self.type_of(v)
            return T("map", items=DYN)
        if isinstance(node, Struct):
            raise self.fail(
                f"message construction `{node.type_name}{{...}}` is not available",
                node,
                "use a map literal {'key': value}",
            )
        if isinstance(node, Call):
            return self.call(node)
        return DYN  # pragma: no cover - every node type is handled above

    def select(self, node: Select) -> T:
        base = self.type_of(node.operand)
        if base.tag == "object" and base.fields is not None:
            if node.field in base.fields:
                return base.fields[node.field]
            close = difflib.get_close_matches(node.field, list(base.fields), n=1)
            where = f"`{base.where}`" if base.where else "this object"
            fix = f"did you mean `{close[0]}`?" if close else "fields: " + ", ".join(base.fields)
            at = Node(node.field_offset or node.offset)
            raise self.fail(f"no field `{node.field}` in {where} of {self.kind}", at, fix)
        if base.tag == "map":
            return base.items or DYN
        if base.tag == "dyn":
            return DYN
        at = Node(node.field_offset or node.offset)
        raise self.fail(f"`.{node.field}` selects a field of {_a(base)}", at)

    def index(self, node: Index) -> T:
        base = self.type_of(node.operand)
        key = self.type_of(node.index)
        if base.tag == "list":
            if key.tag not in ("int", "uint", "dyn"):
                raise self.fail(f"a list is indexed by an int, not {_a(key)}", node.index)
            return base.items or DYN
        if base.tag == "map":
            if key.tag not in ("string", "dyn"):
                raise self.fail(f"this map's keys are strings, not {_a(key)}", node.index)
            return base.items or DYN
        if base.tag == "object" and base.fields is not None:
            if isinstance(node.index, Literal) and node.index.type == "string":
                return self.select(Select(node.offset, node.operand, node.index.value))
            return DYN
        if base.tag == "dyn":
            return DYN
        raise self.fail(f"{_a(base)} cannot be indexed", node)

    def call(self, node: Call) -> T:
        f = node.function
        if f in MACROS:
            return self.macro(node)
        if f in ("_&&_", "_||_"):
            for arg in node.args:
                self.expect_bool(arg, "&&" if f == "_&&_" else "||")
            return BOOL
        if f == "!_":
            self.expect_bool(node.args[0], "!")
            return BOOL
        if f == "-_":
            t = self.type_of(node.args[0])
            if t.tag not in ("int", "double", "number", "dyn"):
                raise self.fail(f"`-` needs an int or a double, not {_a(t)}", node)
            return t
        if f == "_?_:_":
            self.expect_bool(node.args[0], "? :")
            return _join([self.type_of(node.args[1]), self.type_of(node.args[2])])
        if f in ("_==_", "_!=_"):
            left, right = (self.type_of(a) for a in node.args)
            if not _comparable(left, right):
                raise self.fail(f"{_a(left)} is never equal to {_a(right)}", node)
            self.enum_check(node.args, left, right)
            return BOOL
        if f in ("_<_", "_<=_", "_>_", "_>=_"):
            left, right = (self.type_of(a) for a in node.args)
            if not _ordered(left, right):
                op = f.strip("_")
                raise self.fail(f"`{op}` cannot compare {_a(left)} with {_a(right)}", node)
            return BOOL
        if f == "@in":
            item, container = (self.type_of(a) for a in node.args)
            if container.tag == "list":
                if not _comparable(item, container.items or DYN):
                    raise self.fail(f"{_a(item)} is never in {_a(container)}", node)
                self.enum_check(node.args, item, container.items or DYN)
            elif container.tag in ("map", "object"):
                if item.tag not in ("string", "dyn"):
                    raise self.fail(f"this map's keys are strings, not {_a(item)}", node)
            elif container.tag != "dyn":
                raise self.fail(f"`in` needs a list or a map, not {_a(container)}", node.args[1])
            return BOOL
        if f in ("_+_", "_-_", "_*_", "_/_", "_%_"):
            return self.arithmetic(node)
        return self.function(node)

    def expect_bool(self, node: Node, op: str) -> None:
        t = self.type_of(node)
        if t.tag not in ("bool", "dyn"):
            raise self.fail(f"`{op}` needs true or false, not {_a(t)}", node)

    def enum_check(self, args: tuple[Node, ...], left: T, right: T) -> None:
        for lit, other in ((args[0], right), (args[1], left)):
            if (
                isinstance(lit, Literal)
                and lit.type == "string"
                and other.tag == "string"
                and len(other.enum) > 1
                and lit.value not in other.enum
            ):
                raise self.fail(
                    f"{lit.value!r} is never a value of `{other.where}`",
                    lit,
                    "its values: " + ", ".join(other.enum),
                )

    def arithmetic(self, node: Call) -> T:
        op = node.function.strip("_")
        left, right = (self.type_of(a) for a in node.args)
        if "dyn" in (left.tag, right.tag):
            return DYN
        if left.tag in NUMERIC and right.tag in NUMERIC:
            # a number field is a double at run time (the engine makes it one)
            a, b = (("double" if t.tag == "number" else t.tag) for t in (left, right))
            if a != b:
                fix = (
                    "write a double as 2.0, not 2, or convert with double(x)"
                    if "double" in (a, b)
                    else "write a uint as 2u, or convert with int(x) or uint(x)"
                )
                raise self.fail(f"`{op}` mixes {a} and {b}, which CEL does not convert", node, fix)
            if op == "%" and a == "double":
                raise self.fail("`%` takes ints or uints, not doubles", node)
            return T(a)
        if op == "+" and left.tag == right.tag and left.tag in ("string", "bytes", "list"):
            return T(left.tag, items=left.items) if left.tag == "list" else T(left.tag)
        if op in ("+", "-") and {left.tag, right.tag} <= {"timestamp", "duration"}:
            # the library has timestamp +- duration, timestamp - timestamp, duration +- duration
            if left.tag == right.tag == "timestamp":
                if op == "-":
                    return DURATION
            elif left.tag == "timestamp":
                return TIMESTAMP
            elif right.tag == "duration":
                return DURATION
        raise self.fail(f"`{op}` cannot combine {_a(left)} and {_a(right)}", node)

    def function(self, node: Call) -> T:
        overloads = _FUNCTIONS.get(node.function)
        if overloads is None:
            close = difflib.get_close_matches(node.function, list(_FUNCTIONS) + list(MACROS))
            fix = f"did you mean `{close[0]}`?" if close else "see README: policies, functions"
            raise self.fail(f"no function `{node.function}` in llmgw's CEL", node, fix)
        target = self.type_of(node.target) if node.target is not None else None
        args = [self.type_of(a) for a in node.args]
        for want_target, want_args, result in overloads:
            if (want_target is None) != (target is None):
                continue
            if len(want_args) != len(args):
                continue
            if want_target is not None and target is not None and not _fits(target, want_target):
                continue
            if all(_fits(a, w) for a, w in zip(args, want_args, strict=True)):
                if node.function == "matches":
                    self.regex_check(node.args[0])
                return result
        shown = ", ".join(str(a) for a in args)
        on = f" on {_a(target)}" if target is not None else ""
        raise self.fail(f"`{node.function}`{on} does not take ({shown})", node)

    def regex_check(self, arg: Node) -> None:
        if isinstance(arg, Literal) and arg.type == "string":
            why = cel.regex_error(arg.value)
            if why:
                raise self.fail(f"not a regular expression: {why}", arg, "RE2 syntax")

    def macro(self, node: Call) -> T:
        f = node.function
        if f == "has":
            if node.target is not None or len(node.args) != 1:
                raise self.fail("has() takes one field selection, e.g. has(spec.topP)", node)
            arg = node.args[0]
            if not isinstance(arg, Select):
                raise self.fail("has() takes a field selection, e.g. has(spec.topP)", arg)
            self.select(arg)
            return BOOL
        if node.target is None:
            raise self.fail(f"`{f}` is a method: write list.{f}(x, ...)", node)
        counts = {"map": (2, 3)}.get(f, (2,))
        if len(node.args) not in counts or not isinstance(node.args[0], Ident):
            raise self.fail(f"`{f}` takes a variable name and an expression: {f}(x, ...)", node)
        over = self.type_of(node.target)
        if over.tag == "list":
            bound, element = over.bound, over.items or DYN
        elif over.tag == "map":
            bound, element = UNBOUNDED_ITEMS, STRING
        elif over.tag == "object":
            bound, element = len(over.fields or {}), STRING
        elif over.tag == "dyn":
            bound, element = UNBOUNDED_ITEMS, DYN
        else:
            raise self.fail(f"`{f}` loops over a list or a map, not {_a(over)}", node.target)
        name = node.args[0].name
        shown = over.where or "a list"
        self.loops.append(_Loop(f"{f} over {shown}", bound))
        cost = 1
        for lp in self.loops:
            cost *= lp.bound
        if cost > self.worst[0]:
            self.worst = (cost, list(self.loops))
        self.scopes.append({name: element})
        try:
            bodies = [self.type_of(a) for a in node.args[1:]]
        finally:
            self.scopes.pop()
            self.loops.pop()
        conditional = f in ("all", "exists", "exists_one", "filter") or len(bodies) == 2
        if conditional and bodies[0].tag not in ("bool", "dyn"):
            raise self.fail(f"`{f}`'s condition gives {_a(bodies[0])}", node.args[1])
        if f == "map":
            return T("list", items=bodies[-1], bound=bound)
        if f == "filter":
            return T("list", items=element, bound=bound, where=over.where)
        return BOOL


def _a(t: T) -> str:
    word = str(t)
    return f"an {word}" if word[0] in "aeio" else f"a {word}"


def _fits(got: T, want: T) -> bool:
    if got.tag == "dyn" or want.tag == "dyn":
        return True
    if want.tag == "number":
        return got.tag in NUMERIC
    if want.tag == "map":
        return got.tag in ("map", "object")
    return got.tag == want.tag or (got.tag == "number" and want.tag in NUMERIC)


def _comparable(a: T, b: T) -> bool:
    if "dyn" in (a.tag, b.tag) or "null" in (a.tag, b.tag):
        return True
    if a.tag in NUMERIC and b.tag in NUMERIC:
        return True
    if {a.tag, b.tag} <= {"map", "object"}:
        return True
    if a.tag == b.tag == "list":
        return _comparable(a.items or DYN, b.items or DYN)
    return a.tag == b.tag


def _ordered(a: T, b: T) -> bool:
    if "dyn" in (a.tag, b.tag):
        return True
    if a.tag in NUMERIC and b.tag in NUMERIC:
        return True
    return a.tag == b.tag and a.tag in ("string", "bytes", "bool", "timestamp", "duration")


def _join(types: list[T]) -> T:
    tags = {t.tag for t in types} - {"null"}
    if not tags:
        return DYN
    if len(tags) == 1:
        return next(t for t in types if t.tag != "null")
    if tags <= NUMERIC:
        return T("number")
    return DYN


def check(
    tree: Node, variables_by_kind: Mapping[str, Mapping[str, T]], want: str = "bool"
) -> list[tuple[tuple[str, ...], Finding]]:
    """The errors of ``tree`` for each kind, merged: one entry per distinct error (the same
    message at the same place; the first kind's fix), with the kinds it holds for."""
    merged: dict[tuple[str, int], tuple[list[str], str]] = {}
    for kind, variables in variables_by_kind.items():
        finding = Checker(variables, kind).check(tree, want)
        if finding is not None:
            key = (finding.message.replace(kind, "{kind}"), finding.offset)
            merged.setdefault(key, ([], finding.fix))[0].append(kind)
    out: list[tuple[tuple[str, ...], Finding]] = []
    for (message, offset), (kinds, fix) in merged.items():
        shown = ", ".join(kinds)
        fix = fix if len(kinds) == 1 or not fix.startswith("fields:") else ""
        out.append((tuple(kinds), Finding(message.replace("{kind}", shown), offset, fix)))
    return out
