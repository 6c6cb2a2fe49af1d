"""Template versions (seed 000): semver, the variable matrix against the content's
placeholders, the size and token limits, the A/B trigger and its header, immutability (only the
rollback directive, metadata and labels change), and withdrawal rules (a version traffic still
routes to is neither withdrawn nor deleted).

What this module must not do: decide what routes to a version (the traffic splits are the
prompts' section: ``Prompts.routed_to``), or edit a stored version in place.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from reconciler import textrules as tr
from reconciler.emulator.state import persistence as snap
from reconciler.emulator.state.common import (
    DATE_CREATED,
    LABELS,
    Answer,
    ApiError,
    clean,
    invalid,
    is_num,
    iso,
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
from reconciler.emulator.state.templates import Templates
from reconciler.endpoints import CODES, FIELDS, HEADERS, STATUSES

VF = FIELDS.version

CONTENT_HASH = "contentHash"  # server-managed; not in the endpoint table (only the emulator's)
AB_KEYS = ("enabled", "trafficPercent", "variantId")  # abTestingTrigger (seed 000)
AB_HEADER = re.compile(r"^\s*variant=([^,\s]+)\s*,\s*traffic=(\d{1,3})\s*$")
MATRIX_TYPES = ("string", "number", "boolean")

FIELDS_WRITTEN = frozenset(
    {
        VF.template_id,
        VF.version,
        VF.content,
        VF.variables,
        VF.rollback,
        VF.ab_test,
        VF.metadata,
        LABELS,
    }
)
SERVER_FIELDS = frozenset({VF.status, DATE_CREATED, CONTENT_HASH})
MUTABLE = frozenset({VF.rollback, VF.metadata, LABELS})


def _status(withdrawn: bool) -> str:
    return STATUSES.withdrawn if withdrawn else STATUSES.active


def check_ab(ab: Any, header: str | None) -> list[str]:
    """The A/B trigger, and the ``X-Genesys-AB-Test`` header agreeing with it."""
    problems: list[str] = []
    if ab is not None:
        if not isinstance(ab, dict) or set(ab) - set(AB_KEYS):
            return [f"{VF.ab_test} allows {', '.join(AB_KEYS)}"]
        if "enabled" in ab and not isinstance(ab["enabled"], bool):
            problems.append(f"{VF.ab_test}.enabled must be a boolean")
        tp = ab.get("trafficPercent")
        if tp is not None and not (is_num(tp) and 0 <= tp <= 1):
            problems.append(f"{VF.ab_test}.trafficPercent must be between 0 and 1")
        if "variantId" in ab and not isinstance(ab["variantId"], str):
            problems.append(f"{VF.ab_test}.variantId must be a string")
    if header is not None and not problems:
        m = AB_HEADER.match(header)
        if not m or int(m.group(2)) > 100:
            problems.append(
                f"{HEADERS.ab_test} must read variant={{variantId}},traffic={{0..100}}, "
                f"not {header!r}"
            )
        elif isinstance(ab, dict) and ab.get("enabled"):
            variant, pct = m.group(1), int(m.group(2))
            if ab.get("variantId") is not None and variant != ab["variantId"]:
                problems.append(
                    f"{HEADERS.ab_test} variant {variant} is not {VF.ab_test}.variantId "
                    f"{ab['variantId']}"
                )
            tp = ab.get("trafficPercent")
            if is_num(tp) and pct != round(tp * 100):
                problems.append(
                    f"{HEADERS.ab_test} traffic {pct} is not {VF.ab_test}.trafficPercent {tp} x 100"
                )
    return problems


class Versions:
    """The template-version handlers of one org."""

    def __init__(self, org: Org, templates: Templates, prompts: Prompts) -> None:
        self.org = org
        self.templates = templates
        self.prompts = prompts

    def lookup(self, tid: str, version: str) -> Obj:
        """The stored version, or ``404 not.found`` (for it or for its template)."""
        self.templates.lookup(tid)
        v = self.org.versions.get(tid, {}).get(version)
        if v is None:
            raise not_found(f"version {version} of prompt template {tid}")
        return v

    def create_version(self, tid: str, body: Any, ab_header: str | None = None) -> Answer:
        """``ab_header``: the ``X-Genesys-AB-Test`` header, checked against the trigger."""
        self.templates.lookup(tid)
        body = require_object(body)
        refuse_unknown(body, FIELDS_WRITTEN | SERVER_FIELDS)
        b = clean(body, SERVER_FIELDS)
        problems: list[str] = []
        if b.get(VF.template_id) not in (None, tid):
            problems.append(f"{VF.template_id} does not match the path")
        version = b.get(VF.version)
        if not tr.is_semver(version):
            problems.append(f'{VF.version} must be a semantic version string such as "2.1.0"')
        content = b.get(VF.content)
        if not isinstance(content, str) or not content:
            problems.append(f"{VF.content} is required (a non-empty string)")
            content = ""
        matrix = b.get(VF.variables)
        if matrix is not None and not isinstance(matrix, dict):
            problems.append(f"{VF.variables} must map placeholder names to a type or a default")
            matrix = {}
        for k, v in (matrix or {}).items():
            if not (v is None or isinstance(v, str | int | float | bool)):
                problems.append(
                    f"{VF.variables}.{k} must be {'|'.join(MATRIX_TYPES)} or a default value"
                )
        size = len(content.encode("utf-8"))
        if size > tr.VERSION_MAX_BYTES:
            problems.append(
                tr.detail(
                    tr.CONTENT_SIZE,
                    f"{VF.content} is {size} bytes of UTF-8; at most {tr.VERSION_MAX_BYTES}",
                )
            )
        if tr.estimate_tokens(content) > tr.VERSION_MAX_TOKENS:
            problems.append(
                tr.detail(
                    tr.CONTENT_TOKENS,
                    f"{VF.content} is about {len(content) // 4} tokens; at most "
                    f"{tr.VERSION_MAX_TOKENS}",
                )
            )
        used = set(tr.placeholders(content))
        keys = set(matrix or {})
        if used - keys:
            problems.append(
                tr.detail(
                    tr.PLACEHOLDER_UNDECLARED,
                    "placeholder(s) missing from the variable matrix: "
                    + ", ".join(sorted(used - keys)),
                )
            )
        if keys - used:
            problems.append(
                tr.detail(
                    tr.PLACEHOLDER_UNUSED,
                    f"variable(s) not used in the content: {', '.join(sorted(keys - used))}",
                )
            )
        problems += text_problems(VF.content, content)
        for k, v in (matrix or {}).items():
            if isinstance(v, str) and v not in MATRIX_TYPES:  # a default reaches the model
                problems += text_problems(f"{VF.variables}.{k}", v)
        if VF.rollback in b and not isinstance(b[VF.rollback], bool):
            problems.append(f"{VF.rollback} must be a boolean")
        ab = b.get(VF.ab_test)
        problems += check_ab(ab, ab_header)
        metadata: dict[str, str] | None = None
        labels: dict[str, str] = {}
        try:
            if VF.metadata in b:
                metadata = string_map(b[VF.metadata], VF.metadata)
            labels = string_map(b.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), details=problems)
        assert isinstance(version, str)
        if version in self.org.versions.setdefault(tid, {}):
            raise ApiError(
                409, CODES.version_exists, f"version {version} of prompt template {tid} exists"
            )
        withdrawn = bool(b.get(VF.rollback, False))
        obj: Obj = {
            VF.template_id: tid,
            VF.version: version,
            VF.content: content,
        }
        if matrix is not None:
            obj[VF.variables] = dict(matrix)
        obj[VF.rollback] = withdrawn
        if ab is not None:
            obj[VF.ab_test] = dict(ab)
        if metadata is not None:
            obj[VF.metadata] = metadata
        obj[LABELS] = labels
        obj[VF.status] = _status(withdrawn)
        obj[DATE_CREATED] = iso(self.org.now())
        obj[CONTENT_HASH] = "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest()
        self.org.versions[tid][version] = obj
        return Answer(201, obj)

    def patch_version(self, tid: str, version: str, body: Any) -> Answer:
        cur = self.lookup(tid, version)
        body = require_object(body)
        refuse_unknown(body, FIELDS_WRITTEN | SERVER_FIELDS)
        b = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        frozen = sorted(k for k, v in b.items() if k not in MUTABLE and v != cur.get(k))
        if frozen:
            raise ApiError(
                422,
                CODES.immutable_field,
                f"versions are immutable in {', '.join(frozen)}; create a new version instead",
                frozen,
            )
        rollback = b.get(VF.rollback, cur[VF.rollback])
        if rollback is None:
            rollback = False
        if not isinstance(rollback, bool):
            raise invalid(f"{VF.rollback} must be a boolean")
        new = dict(cur)
        if rollback and not cur[VF.rollback]:
            routed = self.prompts.routed_to(tid, version)
            if routed:
                raise ApiError(
                    409,
                    CODES.version_routed,
                    f"version {version} still receives traffic from {', '.join(routed)}; "
                    "move the traffic before withdrawing it",
                )
        new[VF.rollback] = rollback
        new[VF.status] = _status(rollback)
        if VF.metadata in b:
            if b[VF.metadata] is None:
                new.pop(VF.metadata, None)
            else:
                new[VF.metadata] = string_map(b[VF.metadata], VF.metadata)
        if LABELS in b:
            new[LABELS] = {} if b[LABELS] is None else string_map(b[LABELS], LABELS)
        self.org.versions[tid][version] = new
        return Answer(200, new)

    def delete_version(self, tid: str, version: str) -> Answer:
        self.lookup(tid, version)
        routed = self.prompts.routed_to(tid, version)
        if routed:
            raise ApiError(
                409,
                CODES.version_routed,
                f"version {version} still receives traffic from {', '.join(routed)}",
            )
        del self.org.versions[tid][version]
        return Answer(204)

    def list_versions(self, tid: str, query: Mapping[str, str]) -> Answer:
        self.templates.lookup(tid)
        items = sorted(
            self.org.versions.get(tid, {}).values(), key=lambda v: tr.semver_key(v[VF.version])
        )
        return Answer(200, page(items, query))

    def get_version(self, tid: str, version: str) -> Answer:
        return Answer(200, self.lookup(tid, version))

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"versions": self.org.versions}

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        for tid, vs in snap.mapping(data.get("versions"), "versions").items():
            for v, obj in snap.entry(vs, f"versions.{tid}").items():
                yield f"versions.{tid}.{v}", partial(self._restore, tid, v, obj)

    def _restore(self, tid: str, version: str, v: Any) -> None:
        v = snap.entry(v, "version")
        snap.same(v.get(VF.version), version, VF.version)
        self.create_version(tid, {k: x for k, x in v.items() if k not in SERVER_FIELDS})
        stored = self.org.versions[tid][version]  # a new object, never edited in place
        self.org.versions[tid][version] = {**stored, DATE_CREATED: snap.text(v, DATE_CREATED)}
