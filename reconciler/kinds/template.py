"""PromptTemplate (seed 002): a system instruction, a user template and its variables, a token
budget and guardrails. Identity: ``metadata.name``, the remote ``name``; the server's integer
``version`` is its concurrency token (``If-Match: version=N``).

Created and updated in the first wave, deleted in the last (after the versions and the prompts
bound to it). Renamed by its manifest's ``llmgw.io/renamed-from``: one PUT of the whole object
under its new name, with its version as the precondition; it keeps its id, so its versions and
the prompts bound to it (by ``templateId``) stay (they follow the rename: see their kinds).
What it must not do: know the fields of another kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from reconciler import tokens
from reconciler.defaults import fill_defaults
from reconciler.endpoints import FIELDS, PARAMS, PATHS
from reconciler.kinds import common
from reconciler.kinds.base import (
    EDITS,
    Emit,
    ExportDocs,
    PlanContext,
    Reader,
    ReadScope,
    Recorded,
    Resource,
    Writes,
    sorted_live,
)
from reconciler.model import Document
from reconciler.objects import Entity, LiveState, Obj, Unique
from reconciler.operations import Operation, OpType, Phase, Request

F = FIELDS.template
KIND = "PromptTemplate"


class Template(Resource):
    kind: ClassVar[str] = KIND
    schema_file: ClassVar[str] = "prompt-template.schema.json"
    rank: ClassVar[int] = 0
    phase: ClassVar[Phase] = Phase.BASE
    delete_phase: ClassVar[Phase | None] = Phase.DELETE_TEMPLATES
    precondition_word: ClassVar[str] = "version"
    text_fields: ClassVar[frozenset[str]] = frozenset({"systemInstruction", "userTemplate"})
    renamable: ClassVar[bool] = True
    writes: ClassVar[Writes] = {
        OpType.CREATE: (("POST", PATHS.templates),),
        **{a: (("PUT", PATHS.template),) for a in EDITS},
        OpType.DELETE: (("DELETE", PATHS.template),),
    }

    # -- manifests --
    def check(self, doc: Document, emit: Emit) -> None:
        spec = doc.spec
        variables = spec.get("variables")
        names: list[str] = []
        lines: dict[str, int] = {}
        if isinstance(variables, list):
            for i, v in enumerate(variables):
                if isinstance(v, str):
                    names.append(v)
                    lines.setdefault(v, doc.line_of(("spec", "variables", i)))
        if isinstance(variables, list) or variables is None:
            common.placeholders(
                emit, ("spec", "userTemplate"), spec.get("userTemplate"), names, lines, "variables"
            )
        for f in ("systemInstruction", "userTemplate"):
            common.injection(emit, ("spec", f), spec.get(f))
        common.not_substituted(
            emit, ("spec", "systemInstruction"), spec.get("systemInstruction"), "userTemplate"
        )
        system, user = common.s(spec.get("systemInstruction")), common.s(spec.get("userTemplate"))
        limit = spec.get("maxTokens", 4096)
        if (
            system is not None
            and user is not None
            and isinstance(limit, int)
            and not isinstance(limit, bool)
        ):
            n = tokens.count(f"{system}\n{user}")
            if n > limit:
                path = ("spec", "maxTokens") if "maxTokens" in spec else ("spec", "userTemplate")
                emit(
                    path,
                    f"systemInstruction + userTemplate are {n} tokens ({tokens.ENCODING}), "
                    f"over maxTokens {limit}",
                    "shorten the texts or raise spec.maxTokens (at most 128000)",
                    rule=common.TOKEN_BUDGET,
                )

    def fields(self, doc: Document) -> dict[str, Any]:
        return self.normal(doc.spec)

    def normal(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        s = fill_defaults(self.schema_file, dict(spec))
        return {
            "description": s["description"],
            "systemInstruction": s["systemInstruction"],
            "userTemplate": s["userTemplate"],
            "variables": sorted(set(s.get("variables") or [])),
            "maxTokens": s["maxTokens"],
            "safetyGuardrails": dict(sorted(s["safetyGuardrails"].items())),
        }

    def body(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        g = fields["safetyGuardrails"]
        return {
            F.name: name,
            F.description: fields["description"],
            F.system_instruction: fields["systemInstruction"],
            F.user_template: fields["userTemplate"],
            F.variables: list(fields["variables"]),
            F.max_tokens: fields["maxTokens"],
            F.guardrails: {
                F.pii_filter: g["piiFilter"],
                F.jailbreak_detection: g["jailbreakDetection"],
                F.output_moderation: g["outputModeration"],
            },
            FIELDS.labels: dict(fields["labels"]),
        }

    # -- the live org --
    def live(self, raw: Mapping[str, Any], *, endpoint: str = PATHS.templates) -> Obj:
        e = Entity(raw, endpoint, "template", F.name)
        name = e.required(F.name, e.string(F.name))
        tid = e.identity(F.id)
        g = e.sub(F.guardrails)
        spec = {
            "description": e.string(F.description),  # absent: the default
            "systemInstruction": e.string(F.system_instruction) or "",
            "userTemplate": e.string(F.user_template) or "",
            "variables": list(e.strings(F.variables) or []),
            "maxTokens": e.integer(F.max_tokens),
            "safetyGuardrails": {
                "piiFilter": g.boolean(F.pii_filter) if g else None,
                "jailbreakDetection": g.boolean(F.jailbreak_detection) if g else None,
                "outputModeration": g.boolean(F.output_moderation) if g else None,
            },
        }
        fields = self.normal(spec)
        fields["labels"] = e.labels()
        return Obj(
            KIND,
            name,
            fields,
            remote_id=tid,
            precondition=e.integer(F.version),
            managed=e.managed(),
            state_labels=e.state_labels(),
        )

    async def read(self, reader: Reader, state: LiveState, scope: ReadScope) -> None:
        seen = Unique(PATHS.templates, "templates")
        for raw in await reader.list(PATHS.templates):
            obj = self.live(raw)
            seen.add(F.name, obj.key, obj.remote_id)
            seen.add(F.id, str(obj.remote_id))
            state.objects[obj.ref] = obj

    # -- planning --
    def plan(self, ctx: PlanContext) -> None:
        for want in ctx.of_kind(KIND):
            have = ctx.live.get(want.ref)
            body = self.body(want.key, want.fields)
            if have is None:
                ctx.create(self, want, Request("POST", PATHS.templates, body=body))
                continue
            decided = ctx.compare(self, want, have)
            if decided is None:
                continue
            action, changes = decided
            params = {PARAMS.template_id: have.remote_id}
            request = self.guarded("PUT", PATHS.template, params, have, body)
            ctx.operation(
                self, action, want.key, requests=(request,), changes=changes, have=have, want=want
            )

    def delete(self, have: Obj, ctx: PlanContext) -> tuple[Request, ...] | None:
        params = {PARAMS.template_id: have.remote_id}
        return (self.guarded("DELETE", PATHS.template, params, have),)

    # -- applying --
    def own_path(self, key: str, method: str, ids: Mapping[str, str]) -> str | None:
        if method == "POST":
            return PATHS.templates
        tid = ids.get(f"{KIND}/{key}")
        return PATHS.template.format(**{PARAMS.template_id: tid}) if tid is not None else None

    def if_match(self, precondition: int | str | None) -> str:
        return f"version={precondition}"

    def record(self, op: Operation, body: Mapping[str, Any], etag: str | None) -> Recorded:
        ids = {op.ref: str(body[F.id])} if body.get(F.id) is not None else {}
        return Recorded(ids, body.get(F.version))

    # -- export --
    def export(self, live: LiveState, keep: Callable[[Obj], bool]) -> list[ExportDocs]:
        return [
            ExportDocs(
                path_of(tpl.key),
                (common.document(KIND, tpl.key, tpl, common.spec_of(tpl.fields)),),
                (tpl.ref,),
            )
            for tpl in sorted_live(live, KIND)
            if keep(tpl)
        ]


def path_of(name: str) -> str:
    """The export file of template ``name`` (its versions are written into it too)."""
    return f"templates/{common.filename(name)}.yaml"


RESOURCE = Template()
