"""PromptVersion (seed 000): an immutable published version of a template: its content, the
variable matrix and an A/B trigger; ``rollbackDirective: true`` withdraws it. Identity:
``template@version`` (``metadata.name`` must say the same).

Versions are listed per template, and only for the templates the manifests name (or refer to)
or llmgw manages: versions of other templates are unknown, not absent. ``content``,
``variables`` and ``abTest`` cannot change once published (an error saying to publish a new
version); a withdrawal runs after the traffic splits stopped routing to it. Versions have no
concurrency token: the fingerprint of their mutable part stands in. A version cannot be renamed
(its identity is what it is); it follows a rename of its template, whose id its path holds. What
it must not do: know the fields of another kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from reconciler import tokens
from reconciler.defaults import fill_defaults
from reconciler.diffing import DiffItem
from reconciler.endpoints import FIELDS, HEADERS, PARAMS, PATHS
from reconciler.kinds import common
from reconciler.kinds.base import (
    EDITS,
    DocIndex,
    Emit,
    ExportDocs,
    PlanContext,
    Reader,
    ReadScope,
    Recorded,
    Resource,
    Writes,
    read_all,
    rekey,
    sorted_live,
)
from reconciler.kinds.template import KIND as TEMPLATE
from reconciler.kinds.template import path_of
from reconciler.model import Document, Problem
from reconciler.objects import SCALARS, Entity, LiveState, Obj, Unique, fingerprint, floats
from reconciler.operations import Operation, OpType, Phase, Request
from reconciler.rollout import labels as rollout_labels
from reconciler.text import NAME, shown, visible
from reconciler.textrules import VERSION_MAX_BYTES, VERSION_MAX_TOKENS

F = FIELDS.version
KIND = "PromptVersion"
MATRIX_TYPES = frozenset({"string", "number", "boolean"})  # a matrix value that is not a default


def withdrawn_by_rollout(have: Obj | None) -> str | None:
    """The prompt whose rollout withdrew this live version, if one did (and it still is)."""
    if have is None or not have.fields.get("rollbackDirective"):
        return None
    return have.state_labels.get(rollout_labels.WITHDRAWN_BY) or None


def split_key(key: str) -> tuple[str, str]:
    """``template@version`` -> (template, version)."""
    template, _, version = key.rpartition("@")
    return template, version


def versions_path(template_id: str) -> str:
    """The versions listing of a template, its id percent-encoded as one path segment."""
    return PATHS.versions.format(**{PARAMS.template_id: quote(template_id, safe="")})


class Version(Resource):
    kind: ClassVar[str] = KIND
    schema_file: ClassVar[str] = "prompt-version.schema.json"
    rank: ClassVar[int] = 1
    phase: ClassVar[Phase] = Phase.VERSIONS
    delete_phase: ClassVar[Phase | None] = Phase.DELETE_VERSIONS
    immutable: ClassVar[tuple[str, ...]] = ("content", "variables", "abTest")
    # versions are semver, which admits neither invisible characters nor `..`: the schema says
    # so, and a second message here would only repeat it
    identity_fields = (("metadata", "name"), ("spec", "template"))
    reads_after: ClassVar[tuple[str, ...]] = (TEMPLATE,)
    text_fields: ClassVar[frozenset[str]] = frozenset({"content"})
    rename_refusal: ClassVar[tuple[str, str]] = (
        "a version's identity (template@version) is immutable, so it cannot be renamed",
        "publish the content as a new PromptVersion and delete this one; to rename its "
        "template, annotate the PromptTemplate",
    )
    writes: ClassVar[Writes] = {
        OpType.CREATE: (("POST", PATHS.versions),),
        **{a: (("PATCH", PATHS.version),) for a in EDITS},
        OpType.DELETE: (("DELETE", PATHS.version),),
    }

    # -- manifests --
    def identity(self, name: str, spec: Mapping[str, Any]) -> str | None:
        t, v = common.s(spec.get("template")), common.s(spec.get("version"))
        return f"{t}@{v}" if t and v else None

    def check(self, doc: Document, emit: Emit) -> None:
        spec = doc.spec
        template, version = common.s(spec.get("template")), common.s(spec.get("version"))
        if template and version and doc.name and doc.name != f"{template}@{version}":
            emit(
                ("metadata", "name"),
                f"must be {visible(f'{template}@{version}', NAME)} (spec.template@spec.version)",
                f"set metadata.name to {visible(f'{template}@{version}', NAME)}",
                rule=common.IDENTITY_MATCH,
            )
        matrix = spec.get("variables")
        if isinstance(matrix, dict):
            lines = {k: doc.locations.key_line(("spec", "variables", k)) for k in matrix}
            common.placeholders(
                emit, ("spec", "content"), spec.get("content"), matrix, lines, "variables"
            )
            for k, v in matrix.items():  # a default value reaches the model like the content
                if isinstance(v, str) and v not in MATRIX_TYPES:
                    common.injection(emit, ("spec", "variables", k), v)
        content = spec.get("content")
        common.injection(emit, ("spec", "content"), content)
        if isinstance(content, str):
            size = len(content.encode("utf-8"))
            if size > VERSION_MAX_BYTES:
                emit(
                    ("spec", "content"),
                    f"is {size} bytes of UTF-8, over the {VERSION_MAX_BYTES}-byte limit",
                    "shorten the content",
                    rule=common.CONTENT_SIZE,
                )
            n = tokens.count(content)
            if n > VERSION_MAX_TOKENS:
                emit(
                    ("spec", "content"),
                    f"is {n} tokens ({tokens.ENCODING}), over {VERSION_MAX_TOKENS}",
                    "shorten the content",
                    rule=common.CONTENT_TOKENS,
                )
            est = tokens.server_estimate(content)
            if est > VERSION_MAX_TOKENS:
                emit(
                    ("spec", "content"),
                    f"is {est:.0f} tokens by the gateway's estimate "
                    f"(characters / 4), over {VERSION_MAX_TOKENS}",
                    "shorten the content",
                    rule=common.CONTENT_TOKENS,
                )
        ab = spec.get("abTest")
        if isinstance(ab, dict) and ab.get("enabled") is True:
            for f in ("trafficPercent", "variantId"):
                if f not in ab:
                    emit(
                        ("spec", "abTest"),
                        f"an enabled A/B test needs `{f}`",
                        f"add spec.abTest.{f}",
                        rule=common.AB_TEST,
                    )

    def check_set(self, index: DocIndex) -> list[Problem]:
        return common.template_references(index, KIND, TEMPLATE)

    def refers(self, obj: Obj) -> tuple[tuple[str, str], ...]:
        return ((TEMPLATE, split_key(obj.key)[0]),)

    def fields(self, doc: Document) -> dict[str, Any]:
        return self.normal(doc.spec)

    def normal(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        s = fill_defaults(self.schema_file, dict(spec))
        out: dict[str, Any] = {
            "content": s["content"],
            "variables": dict(sorted(s["variables"].items())),
            "rollbackDirective": bool(s["rollbackDirective"]),
            "metadata": dict(sorted(s["metadata"].items())),
        }
        if s.get("abTest") is not None:
            ab = dict(s["abTest"])
            floats(ab, "trafficPercent")
            out["abTest"] = dict(sorted(ab.items()))
        return out

    def body(self, template_id: Any, version: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            F.template_id: template_id,
            F.version: version,
            F.content: fields["content"],
            F.variables: dict(fields["variables"]),
            F.rollback: fields["rollbackDirective"],
            F.metadata: dict(fields["metadata"]),
            FIELDS.labels: dict(fields["labels"]),
        }
        if "abTest" in fields:
            body[F.ab_test] = dict(fields["abTest"])
        return body

    def patch_body(self, fields: Mapping[str, Any], have: Obj | None = None) -> dict[str, Any]:
        """The PATCH of a version's mutable fields; its labels keep llmgw's state on ``have``
        (a rollout's withdrawal)."""
        return {
            F.rollback: fields["rollbackDirective"],
            F.metadata: dict(fields["metadata"]),
            FIELDS.labels: {**fields["labels"], **(have.state_labels if have else {})},
        }

    # -- the live org --
    def live(
        self,
        raw: Mapping[str, Any],
        template_name: str,
        *,
        endpoint: str = PATHS.versions,
        template_id: str | None = None,
    ) -> Obj:
        e = Entity(raw, endpoint, "version", F.version)
        version = e.identity(F.version)
        tid = e.string(F.template_id)
        if template_id is not None and tid is not None and tid != template_id:
            raise e.fail(F.template_id, f"is {shown(tid)}, not the {shown(template_id)} listed")
        variables = e.mapping(F.variables)
        for k, v in (variables or {}).items():
            if not isinstance(v, SCALARS):
                raise e.fail(f"{F.variables}.{k}", f"is {shown(v)}, not a type name or a default")
        spec: dict[str, Any] = {
            "content": e.string(F.content) or "",
            "variables": dict(variables or {}),
            "rollbackDirective": bool(e.boolean(F.rollback)),
            "metadata": dict(e.string_map(F.metadata) or {}),
        }
        ab = e.sub(F.ab_test)
        if ab is not None:
            ab.boolean("enabled")
            ab.number("trafficPercent")
            ab.string("variantId")
            spec["abTest"] = dict(ab.raw)
        fields = self.normal(spec)
        fields["labels"] = e.labels()
        # Versions have no concurrency token of their own: the fingerprint of their mutable
        # part stands in, so apply can still tell that a version moved since the plan.
        return Obj(
            KIND,
            f"{template_name}@{version}",
            fields,
            remote_id=version,
            precondition=fingerprint(fields),
            managed=e.managed(),
            state_labels=e.state_labels(),
            status=e.string(F.status),
        )

    async def read(self, reader: Reader, state: LiveState, scope: ReadScope) -> None:
        wanted = scope.wanted(TEMPLATE)
        to_read = [
            t
            for t in sorted_live(state, TEMPLATE)
            if scope.everything or (t.managed and not scope.targeted) or t.key in wanted
        ]
        listings = await read_all(
            reader, lambda tid: reader.list(versions_path(tid)), [str(t.remote_id) for t in to_read]
        )
        listed = state.listed.setdefault(KIND, set())
        for template, versions in zip(to_read, listings, strict=True):
            listed.add(template.key)
            endpoint = versions_path(str(template.remote_id))
            seen = Unique(endpoint, "versions")
            for raw in versions:
                obj = self.live(
                    raw, template.key, endpoint=endpoint, template_id=str(template.remote_id)
                )
                seen.add(F.version, str(obj.remote_id))
                state.objects[obj.ref] = obj

    def follow_rename(self, state: LiveState, kind: str, old: str, new: str) -> None:
        """A template renamed keeps its versions: ``old@v`` becomes ``new@v`` (the same remote
        objects, under the same template id), and its listing counts as read under ``new``."""
        if kind != TEMPLATE:
            return
        for ref in [r for r, o in state.objects.items() if o.kind == KIND]:
            template, version = split_key(state.objects[ref].key)
            if template == old:
                rekey(state, ref, f"{new}@{version}")
        listed = state.listed.get(KIND)
        if listed is not None and old in listed:
            state.listed[KIND] = (listed - {old}) | {new}

    def absence_known(self, key: str, live: LiveState) -> bool:
        template = split_key(key)[0]
        # listed, or its template is not in the org at all: then the version is surely absent
        return template in live.listed.get(KIND, set()) or not live.get(f"{TEMPLATE}/{template}")

    # -- planning --
    def plan(self, ctx: PlanContext) -> None:
        for want in ctx.of_kind(KIND):
            self._plan(ctx, want)

    def _plan(self, ctx: PlanContext, want: Obj) -> None:
        template, version = split_key(want.key)
        if not ctx.exists(f"{TEMPLATE}/{template}"):
            ctx.problem(
                want,
                "spec.template",
                f"{TEMPLATE} {template} is neither in the manifests nor in the org",
                "add the template's manifest",
            )
            return
        have = ctx.live.get(want.ref)
        tid = ctx.remote_id(TEMPLATE, template)
        if have is None:
            headers = {}
            ab = want.fields.get("abTest")
            if isinstance(ab, dict) and ab.get("enabled"):
                pct = round(float(ab.get("trafficPercent", 0)) * 100)
                headers[HEADERS.ab_test] = f"variant={ab.get('variantId', '')},traffic={pct}"
            body = self.body(tid, version, want.fields)
            request = Request("POST", PATHS.versions, {PARAMS.template_id: tid}, body, headers)
            ctx.create(self, want, request)
            return
        kept = withdrawn_by_rollout(have)
        if kept and not want.fields["rollbackDirective"]:
            # withdrawn by a rollout: stays withdrawn, whatever the manifest still says
            want = dataclasses.replace(want, fields={**want.fields, "rollbackDirective": True})
        reason = f"withdrawn by the rollout of {kept}: it stays withdrawn" if kept else ""
        decided = ctx.compare(self, want, have, noop_reason=reason)
        if decided is None:
            return
        action, changes = decided
        withdrawing = want.fields["rollbackDirective"] and not have.fields.get("rollbackDirective")
        request = Request(
            "PATCH",
            PATHS.version,
            {PARAMS.template_id: tid, PARAMS.version: version},
            self.patch_body(want.fields, have),
        )
        ctx.operation(
            self,
            action,
            want.key,
            reason="withdrawn (rollbackDirective: true)" if withdrawing else "",
            phase=Phase.WITHDRAW if withdrawing else None,
            requests=(request,),
            changes=changes,
            have=have,
            want=want,
        )

    def held(self, want: Obj, have: Obj) -> tuple[Obj, str]:
        """A version a rollout withdrew stays withdrawn: never drift of rollbackDirective."""
        by = withdrawn_by_rollout(have)
        if by is None or want.fields["rollbackDirective"]:
            return want, ""
        fields = {**want.fields, "rollbackDirective": True}
        return dataclasses.replace(want, fields=fields), f"withdrawn by the rollout of {by}"

    def immutable_problem(self, want: Obj, change: DiffItem) -> tuple[str, str]:
        return (
            f"{change.path} of a published version is immutable "
            f"({want.key} exists in the org with other {change.path})",
            "publish a new version (e.g. bump the patch number) and move traffic to it",
        )

    def delete(self, have: Obj, ctx: PlanContext) -> tuple[Request, ...] | None:
        template, version = split_key(have.key)
        parent = ctx.live.get(f"{TEMPLATE}/{template}")
        if parent is None or parent.remote_id is None:
            return None
        return (
            Request(
                "DELETE",
                PATHS.version,
                {PARAMS.template_id: parent.remote_id, PARAMS.version: version},
            ),
        )

    # -- applying --
    def own_path(self, key: str, method: str, ids: Mapping[str, str]) -> str | None:
        template, version = split_key(key)
        tid = ids.get(f"{TEMPLATE}/{template}")
        if tid is None:
            return None
        if method == "POST":
            return PATHS.versions.format(**{PARAMS.template_id: tid})
        return PATHS.version.format(**{PARAMS.template_id: tid, PARAMS.version: version})

    def record(self, op: Operation, body: Mapping[str, Any], etag: str | None) -> Recorded:
        return Recorded({op.ref: str(body.get(F.version) or split_key(op.key)[1])}, None)

    # -- export --
    def export(self, live: LiveState, keep: Callable[[Obj], bool]) -> list[ExportDocs]:
        out = []
        for ver in sorted_live(live, KIND):
            if not keep(ver):
                continue
            template, version = split_key(ver.key)
            f = ver.fields
            spec: dict[str, Any] = {
                "template": template,
                "version": version,
                "content": f["content"],
                "variables": f["variables"],
            }
            if f.get("rollbackDirective"):
                spec["rollbackDirective"] = True
            if "abTest" in f:
                spec["abTest"] = f["abTest"]
            if f.get("metadata"):
                spec["metadata"] = f["metadata"]
            out.append(
                ExportDocs(
                    path_of(template), (common.document(KIND, ver.key, ver, spec),), (ver.ref,)
                )
            )
        return out


RESOURCE = Version()
