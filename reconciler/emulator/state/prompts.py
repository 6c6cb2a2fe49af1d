"""Gateway prompts and their traffic splits (seeds 003, 001), one remote object, and the models
list they name: defaults, ``modelId`` folded into ``modelEndpointRef``, the model's limits,
guardrails, the split's versions and weights, merge-PUT with ETag preconditions, unique names.

A bound prompt's split routes to its template's versions; a prompt created without a template
(seed 003) splits over the release labels it has itself carried (``prompt_labels``). What
routes where is this section's to answer (``routed_to``, ``bound_to``), for the versions' and
the templates' refusals.

What this module must not do: change a template or a version (it only reads them to check a
prompt against them), serve an invocation (``runtime``), or edit a stored prompt in place.
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
    etag_matches,
    invalid,
    is_int,
    is_num,
    iso,
    name_problems,
    names_in,
    not_found,
    page,
    refuse_unknown,
    require_object,
    string_map,
    text_problems,
)
from reconciler.emulator.state.org import MODELS, MODELS_BY_ID, Obj, Org
from reconciler.emulator.state.persistence import Step
from reconciler.endpoints import CODES, FIELDS, HEADERS, STATUSES

PF, VF, MF = FIELDS.prompt, FIELDS.version, FIELDS.model

CONTENT_FILTERS = ("pii", "profanity", "toxicity", "jailbreak")
CATEGORIES = ("violence", "hate_speech", "self_harm", "sexual", "harassment")
SPLIT_VERSION, SPLIT_WEIGHT = "version", "weight"  # trafficDistribution.versions[] entries
STRATEGIES = ("random", "sticky")

FIELDS_WRITTEN = frozenset(
    {
        PF.name,
        PF.template_id,
        PF.model,
        PF.model_alias,
        PF.fallbacks,
        PF.system_prompt,
        PF.version,
        PF.temperature,
        PF.top_p,
        PF.max_tokens,
        PF.guardrails,
        PF.traffic,
        LABELS,
    }
)
SERVER_FIELDS = frozenset({PF.id, PF.status, PF.etag, DATE_CREATED, DATE_MODIFIED, SELF_URI})
DEFAULTS: Mapping[str, Any] = {
    PF.fallbacks: [],
    PF.temperature: 0.7,
    PF.top_p: 0.95,
    PF.max_tokens: 2048,
}
# templateId is optional (seed 003 creates prompts without one): an unbound prompt's split
# routes to the release labels the prompt itself has carried (its own ``version`` values).
REQUIRED = (PF.name, PF.model, PF.system_prompt)
GUARD_MAX_TOKENS_DEFAULT = 4096


def _guard_defaults(given: Any) -> Any:
    if not isinstance(given, dict):
        return given  # reported by the check
    return {
        PF.content_filtering: [],
        PF.guard_max_tokens: GUARD_MAX_TOKENS_DEFAULT,
        PF.blocked_categories: [],
        **{k: v for k, v in given.items() if v is not None},
    }


def _etag_check(what: str, cur: Obj, if_match: str | None) -> None:
    if if_match is not None and not etag_matches(if_match, cur[PF.etag]):
        raise ApiError(
            412,
            CODES.precondition_failed,
            f"{what} changed since {if_match} (now {cur[PF.etag]})",
        )


def _labels(history: Any, *, given: bool = False) -> tuple[str, ...]:
    """A prompt's release labels in a snapshot: a list of strings (absent: none; an entry
    ``given`` in the snapshot must be a list)."""
    if given and history is None:
        raise ValueError("promptLabels are lists of version labels, not null")
    history = snap.listing(history, "promptLabels")
    if not all(isinstance(x, str) for x in history):
        raise ValueError("promptLabels are lists of version labels (strings)")
    return tuple(history)


class Prompts:
    """The gateway-prompt handlers of one org, and the questions about its traffic splits."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def lookup(self, pid: str) -> Obj:
        """The stored prompt, or ``404 not.found``."""
        p = self.org.prompts.get(pid)
        if p is None:
            raise not_found(f"gateway prompt {pid}")
        return p

    def bound_to(self, tid: str) -> list[str]:
        """Names of the prompts bound to this template."""
        return sorted(p[PF.name] for p in self.org.prompts.values() if p.get(PF.template_id) == tid)

    def routed_to(self, tid: str, version: str) -> list[str]:
        """Names of the prompts whose traffic split sends traffic to this version."""
        out = []
        for p in self.org.prompts.values():
            if p.get(PF.template_id) != tid:
                continue
            td = p.get(PF.traffic) or {}
            listed = {
                str(e.get(SPLIT_VERSION))
                for e in td.get(PF.td_versions) or []
                if isinstance(e, dict) and (e.get(SPLIT_WEIGHT) or 0) > 0
            }
            if td.get(PF.td_default) == version or version in listed:
                out.append(p[PF.name])
        return sorted(out)

    def _check(self, p: Obj, pid: str | None) -> None:
        problems: list[str] = []
        missing = [f for f in REQUIRED if p.get(f) is None]
        for f in missing:
            problems.append(
                f"{f} is required" + (f" (or {PF.model_alias})" if f == PF.model else "")
            )
        name = p.get(PF.name)
        if name is not None and (
            not isinstance(name, str) or not NAME_MIN_CHARS <= len(name) <= NAME_MAX_CHARS
        ):
            problems.append(
                f"{PF.name} must be a string of {NAME_MIN_CHARS} to {NAME_MAX_CHARS} characters"
            )
        tid = p.get(PF.template_id)
        if tid is not None and (not isinstance(tid, str) or tid not in self.org.templates):
            problems.append(f"{PF.template_id} {tid!r} is not a prompt template")
        models = MODELS_BY_ID
        model = p.get(PF.model)
        if model is not None and not isinstance(model, str):
            problems.append(f"{PF.model} must be a model id (a string)")
            model = None
        elif model is not None and model not in models:
            problems.append(
                f"model {model!r} is not in the models list ({', '.join(sorted(models))})"
            )
        fb = p.get(PF.fallbacks)
        if not isinstance(fb, list) or not all(isinstance(m, str) for m in fb):
            problems.append(f"{PF.fallbacks} must be a list of model ids")
        else:
            problems += [
                f"fallback model {m!r} is not in the models list" for m in fb if m not in models
            ]
        sp = p.get(PF.system_prompt)
        if sp is not None and not isinstance(sp, str):
            problems.append(f"{PF.system_prompt} must be a string")
        sp = sp if isinstance(sp, str) else ""
        if len(sp) > tr.PROMPT_MAX_CHARS:
            problems.append(
                tr.detail(
                    tr.PROMPT_LENGTH,
                    f"{PF.system_prompt} is {len(sp)} characters; at most {tr.PROMPT_MAX_CHARS}",
                )
            )
        problems += text_problems(PF.system_prompt, sp)
        problems += name_problems(PF.name, p.get(PF.name))
        t = p.get(PF.temperature)
        if not is_num(t) or not 0.0 <= t <= 2.0:
            problems.append(f"{PF.temperature} must be a number from 0.0 to 2.0")
        tp = p.get(PF.top_p)
        if not is_num(tp) or not 0.0 <= tp <= 1.0:
            problems.append(f"{PF.top_p} must be a number from 0 to 1")
        mt = p.get(PF.max_tokens)
        if not is_int(mt) or mt < 1:
            problems.append(f"{PF.max_tokens} must be a positive integer")
        elif model is not None and model in models and mt > models[model][MF.max_output_tokens]:
            problems.append(
                f"{PF.max_tokens} {mt} exceeds {model}'s {MF.max_output_tokens} "
                f"{models[model][MF.max_output_tokens]}"
            )
        if PF.version in p and not tr.is_semver(p[PF.version]):
            problems.append(f'{PF.version} must be a semantic version string such as "1.2.0"')
        g = p.get(PF.guardrails)
        allowed = (PF.content_filtering, PF.guard_max_tokens, PF.blocked_categories)
        if not isinstance(g, dict) or set(g) - set(allowed):
            problems.append(f"{PF.guardrails} allows {', '.join(allowed)}")
        else:
            cf, bc = g.get(PF.content_filtering), g.get(PF.blocked_categories)
            if not names_in(cf, CONTENT_FILTERS):
                problems.append(
                    f"{PF.guardrails}.{PF.content_filtering} allows {', '.join(CONTENT_FILTERS)}"
                )
            if not names_in(bc, CATEGORIES):
                problems.append(
                    f"{PF.guardrails}.{PF.blocked_categories} allows {', '.join(CATEGORIES)}"
                )
            gmt = g.get(PF.guard_max_tokens)
            if not is_int(gmt) or gmt < 1:
                problems.append(f"{PF.guardrails}.{PF.guard_max_tokens} must be a positive integer")
            elif tr.estimate_tokens(sp) > gmt:
                problems.append(
                    tr.detail(
                        tr.PROMPT_TOKENS,
                        f"{PF.system_prompt} is about {len(sp) // 4} tokens (characters / 4), "
                        f"over {PF.guardrails}.{PF.guard_max_tokens} {gmt}",
                    )
                )
        withdrawn: list[str] = []
        if p.get(PF.traffic) is not None and (tid is None or isinstance(tid, str)):
            problems += self._check_traffic(p[PF.traffic], tid, withdrawn, self._own_labels(p, pid))
        try:
            string_map(p.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), details=problems)
        if withdrawn:
            raise ApiError(
                409,
                CODES.version_withdrawn,
                "traffic would route to withdrawn version(s) " + ", ".join(withdrawn),
            )
        if self.org.prompt_names.get(str(name), pid) != pid:
            raise ApiError(
                409, CODES.name_exists, f"a gateway prompt named {name!r} already exists"
            )

    def _own_labels(self, p: Mapping[str, Any], pid: str | None) -> tuple[str, ...]:
        """The release labels a prompt has carried, its current ``version`` last (seed 003)."""
        labels = self.org.prompt_labels.get(pid, ()) if pid is not None else ()
        v = p.get(PF.version)
        return (*labels, v) if isinstance(v, str) and v not in labels else labels

    def _check_traffic(
        self, td: Any, tid: str | None, withdrawn: list[str], own: tuple[str, ...] = ()
    ) -> list[str]:
        """A bound prompt's split routes to its template's versions; an unbound prompt's split
        to its own release labels ``own`` (which are never withdrawn)."""
        if not isinstance(td, dict):
            return [f"{PF.traffic} must be an object"]
        if tid is None:
            versions: Mapping[str, Any] = {v: {VF.rollback: False} for v in own}
            whose = (
                "a release label of this prompt (it has carried: "
                + (", ".join(own) or "none; set version")
                + ")"
            )
        else:
            versions = self.org.versions.get(tid, {})
            whose = "a version of the bound template"
        if PF.td_default in td:
            if set(td) - {PF.td_default}:
                return [f"{PF.traffic} takes either {PF.td_default} or {PF.td_versions}"]
            v = td[PF.td_default]
            if not isinstance(v, str) or v not in versions:
                return [f"{PF.td_default} {v!r} is not {whose}"]
            if versions[v][VF.rollback]:
                withdrawn.append(v)
            return []
        if set(td) - {PF.td_versions, PF.td_strategy}:
            return [
                f"{PF.traffic} allows {PF.td_default}, or {PF.td_versions} and {PF.td_strategy}"
            ]
        entries = td.get(PF.td_versions)
        if not isinstance(entries, list) or not entries:
            return [f"{PF.traffic}.{PF.td_versions} must be a non-empty list"]
        if td.get(PF.td_strategy, "random") not in STRATEGIES:
            return [f"{PF.traffic}.{PF.td_strategy} must be one of {', '.join(STRATEGIES)}"]
        problems: list[str] = []
        total = 0.0
        seen: set[str] = set()
        for e in entries:
            if (
                not isinstance(e, dict)
                or set(e) != {SPLIT_VERSION, SPLIT_WEIGHT}
                or not isinstance(e[SPLIT_VERSION], str)
                or not is_num(e[SPLIT_WEIGHT])
                or not 0 <= e[SPLIT_WEIGHT] <= 1
            ):
                problems.append(
                    f"each {PF.td_versions} entry is {{{SPLIT_VERSION}, {SPLIT_WEIGHT} 0..1}}"
                )
                continue
            v = e[SPLIT_VERSION]
            if v in seen:
                problems.append(f"split version {v!r} is listed twice")
            seen.add(v)
            total += e[SPLIT_WEIGHT]
            if v not in versions:
                problems.append(f"split version {v!r} is not {whose}")
            elif versions[v][VF.rollback] and e[SPLIT_WEIGHT] > 0:
                withdrawn.append(v)
        if not problems and abs(total - 1.0) > tr.WEIGHT_TOLERANCE:
            problems.append(
                tr.detail(
                    tr.SPLIT_WEIGHTS,
                    f"split weights sum to {round(total, 4)}, not 1.0 "
                    f"(within {tr.WEIGHT_TOLERANCE})",
                )
            )
        return problems

    @staticmethod
    def _body(body: Any) -> Obj:
        """The body with server fields dropped and ``modelId`` folded into ``modelEndpointRef``."""
        body = require_object(body)
        refuse_unknown(body, FIELDS_WRITTEN | SERVER_FIELDS)
        b = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        if PF.model_alias in b:
            alias = b.pop(PF.model_alias)
            if b.get(PF.model) is None:  # both given: modelEndpointRef wins
                b[PF.model] = alias
        return b

    def _store(self, p: Obj, replaced: Obj | None = None) -> None:
        pid = p[PF.id]
        self.org.prompts[pid] = p
        if replaced is not None:
            self.org.prompt_names.pop(replaced[PF.name], None)
        self.org.prompt_names[p[PF.name]] = pid

    def create_prompt(self, body: Any, base: str) -> Answer:
        b = {k: v for k, v in self._body(body).items() if v is not None}
        p: Obj = {**DEFAULTS, **b}
        p[PF.guardrails] = _guard_defaults(b.get(PF.guardrails, {}))
        p.setdefault(LABELS, {})
        self._check(p, None)
        pid = self.org.new_id()
        stamp = iso(self.org.now())
        p = {
            PF.id: pid,
            **p,
            PF.status: STATUSES.active,
            PF.etag: self.org.new_etag(),
            DATE_CREATED: stamp,
            DATE_MODIFIED: stamp,
            SELF_URI: f"{base}/{pid}",
        }
        self._store(p)
        self.org.prompt_labels[pid] = self._own_labels(p, None)
        return Answer(201, p, {HEADERS.etag: p[PF.etag]})

    def update_prompt(self, pid: str, body: Any, if_match: str | None) -> Answer:
        """Merge-PUT (seed 003): only the top-level fields present change; null resets."""
        cur = self.lookup(pid)
        _etag_check(f"gateway prompt {pid}", cur, if_match)
        b = self._body(body)
        new = dict(cur)
        for k, v in b.items():
            if v is None:
                new.pop(k, None)
                if k in DEFAULTS:
                    new[k] = DEFAULTS[k]
            else:
                new[k] = v
        if PF.guardrails in b:
            given = b[PF.guardrails]
            new[PF.guardrails] = _guard_defaults({} if given is None else given)
        if new.get(LABELS) is None:
            new[LABELS] = {}
        self._check(new, pid)
        new[PF.etag] = self.org.new_etag()
        new[DATE_MODIFIED] = iso(self.org.now())
        self._store(new, replaced=cur)
        self.org.prompt_labels[pid] = self._own_labels(new, pid)
        return Answer(200, new, {HEADERS.etag: new[PF.etag]})

    def delete_prompt(self, pid: str, if_match: str | None = None) -> Answer:
        cur = self.lookup(pid)
        _etag_check(f"gateway prompt {pid}", cur, if_match)
        del self.org.prompts[pid]
        self.org.prompt_names.pop(cur[PF.name], None)
        self.org.prompt_labels.pop(pid, None)
        return Answer(204)

    def list_prompts(self, query: Mapping[str, str]) -> Answer:
        items = sorted(self.org.prompts.values(), key=itemgetter(PF.name, PF.id))
        return Answer(200, page(items, query))

    def get_prompt(self, pid: str) -> Answer:
        p = self.lookup(pid)
        return Answer(200, p, {HEADERS.etag: p[PF.etag]})

    def list_models(self, query: Mapping[str, str]) -> Answer:
        return Answer(200, page(list(MODELS), query))

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"prompts": self.org.prompts, "promptLabels": self.org.prompt_labels}

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        labels = snap.mapping(data.get("promptLabels"), "promptLabels")
        for pid, history in labels.items():  # every entry, whether its prompt is there or not
            yield f"promptLabels.{pid}", partial(_labels, history, given=True)
        for pid, p in snap.mapping(data.get("prompts"), "prompts").items():
            yield f"prompts.{pid}", partial(self._restore, pid, p, labels.get(pid))

    def _restore(self, pid: str, p: Any, labels: Any) -> None:
        p = snap.entry(p, "prompt")
        refuse_unknown(p, FIELDS_WRITTEN | SERVER_FIELDS)
        if PF.model_alias in p:
            raise ValueError(f"a stored prompt has {PF.model}, never {PF.model_alias}")
        self.org.prompt_labels[pid] = _labels(labels)
        fields = {k: x for k, x in p.items() if k not in SERVER_FIELDS and x is not None}
        self._check(fields, pid)
        snap.same(p.get(PF.id), pid, PF.id)
        self._store(
            {
                PF.id: pid,
                **fields,
                **{
                    f: snap.text(p, f)
                    for f in (PF.status, PF.etag, DATE_CREATED, DATE_MODIFIED, SELF_URI)
                },
            }
        )
        self.org.prompt_labels[pid] = self._own_labels(fields, pid)
