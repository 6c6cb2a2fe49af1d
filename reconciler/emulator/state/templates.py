"""Prompt templates (seed 002): their fields and limits, ``version=N`` preconditions, unique
names, and the refusal to delete a template a gateway prompt binds.

A template's versions (seed 000) are a collection of their own (``versions``), created empty
with the template and deleted with it: that much of them this section touches.

What this module must not do: check a version or a prompt (their sections do; it only asks
``Prompts.bound_to``), authenticate or page by itself, or edit a stored template in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from operator import itemgetter
from typing import Any

from reconciler import textrules as tr
from reconciler.emulator.state import persistence as snap
from reconciler.emulator.state.common import (
    DATE_CREATED,
    DATE_MODIFIED,
    LABELS,
    NAME_MAX_CHARS,
    NAME_MIN_CHARS,
    SELF_URI,
    Answer,
    ApiError,
    clean,
    etag_matches,
    invalid,
    is_int,
    iso,
    name_problems,
    not_found,
    page,
    refuse_unknown,
    require_object,
    string_map,
    text_problems,
)
from reconciler.emulator.state.org import Obj, Org
from reconciler.emulator.state.persistence import Step
from reconciler.emulator.state.prompts import Prompts
from reconciler.endpoints import CODES, FIELDS

TF = FIELDS.template

FIELDS_WRITTEN = frozenset(
    {
        TF.name,
        TF.description,
        TF.system_instruction,
        TF.user_template,
        TF.variables,
        TF.max_tokens,
        TF.guardrails,
        LABELS,
    }
)
SERVER_FIELDS = frozenset({TF.id, TF.version, DATE_CREATED, DATE_MODIFIED, SELF_URI})
GUARDS = (TF.pii_filter, TF.jailbreak_detection, TF.output_moderation)
MAX_TOKENS_MIN, MAX_TOKENS_MAX = 256, 128000
MAX_TOKENS_DEFAULT = 4096


class Templates:
    """The prompt-template handlers of one org."""

    def __init__(self, org: Org, prompts: Prompts) -> None:
        self.org = org
        self.prompts = prompts

    def lookup(self, tid: str) -> Obj:
        """The stored template, or ``404 not.found``."""
        t = self.org.templates.get(tid)
        if t is None:
            raise not_found(f"prompt template {tid}")
        return t

    def _fields(self, body: Any, current_id: str | None) -> Obj:
        """The template a write describes (every check but the precondition), without its
        server-managed fields."""
        body = require_object(body)
        refuse_unknown(body, FIELDS_WRITTEN | SERVER_FIELDS)
        b = clean(body, SERVER_FIELDS)
        problems: list[str] = []
        name = b.get(TF.name)
        if not isinstance(name, str) or not NAME_MIN_CHARS <= len(name) <= NAME_MAX_CHARS:
            problems.append(
                f"{TF.name} must be a string of {NAME_MIN_CHARS} to {NAME_MAX_CHARS} characters"
            )
        for f in (TF.description, TF.system_instruction, TF.user_template):
            if f in b and not isinstance(b[f], str):
                problems.append(f"{f} must be a string")
        variables = b.get(TF.variables)
        if variables is not None and (
            not isinstance(variables, list) or not all(isinstance(v, str) for v in variables)
        ):
            problems.append(f"{TF.variables} must be a list of names")
            variables = None
        mt = b.get(TF.max_tokens, MAX_TOKENS_DEFAULT)
        if not is_int(mt) or not MAX_TOKENS_MIN <= mt <= MAX_TOKENS_MAX:
            problems.append(
                f"{TF.max_tokens} must be an integer from {MAX_TOKENS_MIN} to {MAX_TOKENS_MAX}"
            )
        g = b.get(TF.guardrails, {})
        if (
            not isinstance(g, dict)
            or set(g) - set(GUARDS)
            or not all(isinstance(v, bool) for v in g.values())
        ):
            problems.append(f"{TF.guardrails} allows only the booleans {', '.join(GUARDS)}")
            g = {}
        problems += name_problems(TF.name, name)
        text = b.get(TF.user_template)
        used = tr.placeholders(text) if isinstance(text, str) else {}
        missing = sorted(set(used) - set(variables or []))
        if missing:
            problems.append(
                tr.detail(
                    tr.PLACEHOLDER_UNDECLARED,
                    f"{TF.user_template} uses placeholder(s) not in {TF.variables}: "
                    + ", ".join(missing),
                )
            )
        for f in (TF.system_instruction, TF.user_template):
            problems += text_problems(f, b.get(f))
        try:
            labels = string_map(b.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
            labels = {}
        if problems:
            raise invalid("; ".join(problems), details=problems)
        if self.org.template_names.get(str(name), current_id) != current_id:
            raise ApiError(
                409, CODES.name_exists, f"a prompt template named {name!r} already exists"
            )
        out: Obj = {TF.name: name}
        for f in (TF.description, TF.system_instruction, TF.user_template):
            if f in b:
                out[f] = b[f]
        if variables is not None:
            out[TF.variables] = list(variables)
        out[TF.max_tokens] = mt
        out[TF.guardrails] = {k: g.get(k, True) for k in GUARDS}
        out[LABELS] = labels
        return out

    @staticmethod
    def _precondition(tid: str, cur: Obj, if_match: str | None) -> None:
        """A template's tag is ``version=N`` (seed 002); the bare ``N`` is accepted too."""
        n = cur[TF.version]
        if if_match is None or etag_matches(if_match, f"version={n}", str(n)):
            return
        raise ApiError(
            412,
            CODES.precondition_failed,
            f"prompt template {tid} is at version {n} (If-Match: version={n}), not {if_match!r}",
        )

    def _store(self, obj: Obj, replaced: Obj | None = None) -> None:
        tid = obj[TF.id]
        self.org.templates[tid] = obj
        if replaced is not None:
            self.org.template_names.pop(replaced[TF.name], None)
        self.org.template_names[obj[TF.name]] = tid
        self.org.versions.setdefault(tid, {})  # its versions' collection, empty at first

    def create_template(self, body: Any, base: str) -> Answer:
        """``base`` is the collection's absolute URL, for ``selfUri``."""
        obj = self._fields(body, None)
        tid = self.org.new_id()
        stamp = iso(self.org.now())
        obj = {
            TF.id: tid,
            **obj,
            TF.version: 1,
            DATE_CREATED: stamp,
            DATE_MODIFIED: stamp,
            SELF_URI: f"{base}/{tid}",
        }
        self._store(obj)
        return Answer(201, obj)

    def replace_template(self, tid: str, body: Any, if_match: str | None) -> Answer:
        cur = self.lookup(tid)
        self._precondition(tid, cur, if_match)
        obj = self._fields(body, tid)
        obj = {
            TF.id: tid,
            **obj,
            TF.version: cur[TF.version] + 1,
            DATE_CREATED: cur[DATE_CREATED],
            DATE_MODIFIED: iso(self.org.now()),
            SELF_URI: cur[SELF_URI],
        }
        self._store(obj, replaced=cur)
        return Answer(200, obj)

    def delete_template(self, tid: str, if_match: str | None = None) -> Answer:
        cur = self.lookup(tid)
        self._precondition(tid, cur, if_match)
        bound = self.prompts.bound_to(tid)
        if bound:
            raise ApiError(
                409,
                CODES.template_bound,
                f"prompt template {tid} is bound by gateway prompt(s) {', '.join(bound)}; "
                "delete or rebind them first",
            )
        del self.org.templates[tid]
        self.org.template_names.pop(cur[TF.name], None)
        self.org.versions.pop(tid, None)  # its versions go with it
        return Answer(204)

    def list_templates(self, query: Mapping[str, str]) -> Answer:
        items = sorted(self.org.templates.values(), key=itemgetter(TF.name, TF.id))
        return Answer(200, page(items, query))

    def get_template(self, tid: str) -> Answer:
        return Answer(200, self.lookup(tid))

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"templates": self.org.templates}

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        for tid, t in snap.mapping(data.get("templates"), "templates").items():
            yield f"templates.{tid}", partial(self._restore, tid, t)

    def _restore(self, tid: str, t: Any) -> None:
        t = snap.entry(t, "template")
        obj = self._fields(t, tid)
        snap.same(t.get(TF.id), tid, TF.id)
        version = t.get(TF.version)
        if not is_int(version) or version < 1:
            raise ValueError(f"{TF.version} must be an integer of 1 or more")
        self._store(
            {
                TF.id: tid,
                **obj,
                TF.version: version,
                DATE_CREATED: snap.text(t, DATE_CREATED),
                DATE_MODIFIED: snap.text(t, DATE_MODIFIED),
                SELF_URI: snap.text(t, SELF_URI),
            }
        )
