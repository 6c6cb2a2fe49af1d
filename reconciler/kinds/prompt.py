"""Prompt (seeds 003, 001) and the TrafficSplit it owns: one remote object, two manifest kinds.

A Prompt binds a template to a model with fallbacks, a system prompt (rendered with its few-shot
examples), sampling and guardrails. Its TrafficSplit is the same remote object's
``trafficDistribution``: weighted versions of the bound template, or one default version. So
this module reads both from one listing, plans both as one operation (one PUT when both change:
the split's fields under ``trafficDistribution``), records one answer for both, and exports them
into one file. Identity: the prompt's ``metadata.name`` (a split's ``spec.prompt``).

A prompt's references are checked when planning: its template (in the manifests or the org),
its model and fallback models (the org's model catalogue, read here too), the model's output
limit; a split's versions exist and are not withdrawn. A prompt is renamed by its manifest's
``llmgw.io/renamed-from``: the merge-PUT carries the new name (with the fields that differ), its
ETag the precondition; its id, split and state labels stay. A prompt follows a rename of its
template (bound by id, shown by name). What it must not do: know the fields of another kind
beyond the versions a split names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from reconciler import tokens
from reconciler.defaults import fill_defaults
from reconciler.diffing import DiffItem, diff, top_fields
from reconciler.endpoints import FIELDS, HEADERS, PARAMS, PATHS
from reconciler.fewshot import render_system_prompt
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
    created,
    doc_problem,
    reference_warning,
    sorted_live,
)
from reconciler.kinds.template import KIND as TEMPLATE
from reconciler.kinds.version import KIND as VERSION
from reconciler.model import Document, Path, Problem
from reconciler.objects import Entity, LiveState, Obj, ServerTime, Unique, floats, renaming
from reconciler.operations import Operation, OpType, Phase, Request
from reconciler.rollout import labels
from reconciler.rollout import spec as rollout_spec
from reconciler.text import NAME, shown, visible
from reconciler.textrules import PROMPT_MAX_CHARS, WEIGHT_TOLERANCE

F = FIELDS.prompt
KIND = "Prompt"
SPLIT = "TrafficSplit"
TRAFFIC = F.traffic  # a split's fields show in a diff under the remote object's field


def _prefixed(items: tuple[DiffItem, ...], prefix: str) -> tuple[DiffItem, ...]:
    return tuple(
        DiffItem(i.op, f"{prefix}.{i.path}" if i.path else prefix, i.old, i.new) for i in items
    )


def _path(key: str, method: str, ids: Mapping[str, str]) -> str | None:
    if method == "POST":
        return PATHS.prompts
    pid = ids.get(f"{KIND}/{key}")
    return PATHS.prompt.format(**{PARAMS.prompt_id: pid}) if pid is not None else None


def _record(op: Operation, body: Mapping[str, Any], etag: str | None) -> Recorded:
    """One answer for the prompt and its split: both refs get the id, the ETag is the new
    precondition of the one remote object."""
    ids = {}
    if body.get(F.id) is not None:
        ids = {f"{KIND}/{op.key}": str(body[F.id]), f"{SPLIT}/{op.key}": str(body[F.id])}
    return Recorded(ids, etag or body.get(F.etag))


class Prompt(Resource):
    kind: ClassVar[str] = KIND
    precondition_word: ClassVar[str] = HEADERS.etag
    schema_file: ClassVar[str] = "prompt.schema.json"
    rank: ClassVar[int] = 2
    phase: ClassVar[Phase] = Phase.PROMPTS
    delete_phase: ClassVar[Phase | None] = Phase.DELETE_PROMPTS
    identity_fields = (("metadata", "name"), ("spec", "template"))
    reads_after: ClassVar[tuple[str, ...]] = (TEMPLATE,)
    mirrored: ClassVar[bool] = True
    text_fields: ClassVar[frozenset[str]] = frozenset({"systemPrompt"})
    renamable: ClassVar[bool] = True
    writes: ClassVar[Writes] = {
        OpType.CREATE: (("POST", PATHS.prompts),),
        **{a: (("PUT", PATHS.prompt),) for a in EDITS},
        OpType.DELETE: (("DELETE", PATHS.prompt),),
    }

    # -- manifests --
    def check(self, doc: Document, emit: Emit) -> None:
        spec = doc.spec
        common.injection(emit, ("spec", "systemPrompt"), spec.get("systemPrompt"))
        common.not_substituted(
            emit, ("spec", "systemPrompt"), spec.get("systemPrompt"), "a template's userTemplate"
        )
        few = spec.get("fewShot")
        examples = few.get("examples") if isinstance(few, dict) else None
        if isinstance(examples, list):
            for i, ex in enumerate(examples):
                if isinstance(ex, dict):
                    for f in ("input", "output"):
                        common.injection(emit, ("spec", "fewShot", "examples", i, f), ex.get(f))
        model, fallbacks = spec.get("model"), spec.get("fallbackModels")
        if isinstance(fallbacks, list) and isinstance(model, str) and model in fallbacks:
            emit(
                ("spec", "fallbackModels", fallbacks.index(model)),
                f"the primary model {shown(model)} is also listed as a fallback",
                "remove it from fallbackModels",
                rule=common.FALLBACK,
            )
        if not isinstance(spec.get("systemPrompt"), str):
            return
        rendered = render_system_prompt(spec)
        if isinstance(examples, list) and isinstance(few, dict):
            limit = few.get("contextWindowLimit")
            if not rendered.fits:
                emit(
                    ("spec", "fewShot", "contextWindowLimit"),
                    f"not even the newest few-shot example fits in contextWindowLimit {limit} "
                    "tokens",
                    "raise contextWindowLimit, or shorten the system prompt or the examples",
                    rule=common.FEW_SHOT,
                )
            else:
                for i in rendered.dropped:
                    ex = examples[i] if i < len(examples) and isinstance(examples[i], dict) else {}
                    emit(
                        ("spec", "fewShot", "examples", i),
                        f"few-shot example {i + 1} ({shown(str(ex.get('input', '')), 40)}) is "
                        f"dropped: the rendered prompt exceeds contextWindowLimit {limit} tokens "
                        "with it",
                        "remove it, or raise contextWindowLimit",
                        severity="warning",
                        rule=common.FEW_SHOT,
                    )
        text = rendered.text
        if len(text) > PROMPT_MAX_CHARS:
            emit(
                ("spec", "systemPrompt"),
                f"renders to {len(text)} characters, over the {PROMPT_MAX_CHARS}-character limit",
                "shorten the system prompt or the few-shot examples",
                rule=common.PROMPT_LENGTH,
            )
        guard = spec.get("safetyGuardrails")
        limit = guard.get("maxTokens", 4096) if isinstance(guard, dict) else 4096
        if isinstance(limit, int) and not isinstance(limit, bool):
            where = (
                ("spec", "safetyGuardrails", "maxTokens")
                if isinstance(guard, dict) and "maxTokens" in guard
                else ("spec", "systemPrompt")
            )
            n = tokens.count(text)
            if n > limit:
                emit(
                    where,
                    f"the rendered system prompt is {n} tokens ({tokens.ENCODING}), over "
                    f"safetyGuardrails.maxTokens {limit}",
                    "raise safetyGuardrails.maxTokens or shorten the system prompt",
                    rule=common.PROMPT_TOKENS,
                )
            est = tokens.server_estimate(text)
            if est > limit:
                emit(
                    where,
                    f"the rendered system prompt is {est:.0f} tokens by the gateway's estimate "
                    f"(characters / 4), over safetyGuardrails.maxTokens {limit}",
                    "raise safetyGuardrails.maxTokens or shorten the system prompt",
                    rule=common.PROMPT_TOKENS,
                )

    def check_set(self, index: DocIndex) -> list[Problem]:
        return common.template_references(index, KIND, TEMPLATE)

    def refers(self, obj: Obj) -> tuple[tuple[str, str], ...]:
        return ((TEMPLATE, str(obj.fields.get("template"))),)

    def fields(self, doc: Document) -> dict[str, Any]:
        return self.normal(doc.spec, render_system_prompt(doc.spec).text)

    def normal(self, spec: Mapping[str, Any], system_prompt: str) -> dict[str, Any]:
        s = fill_defaults(self.schema_file, dict(spec))
        g = s["safetyGuardrails"]
        out: dict[str, Any] = {
            "template": s["template"],
            "model": s["model"],
            "fallbackModels": list(s["fallbackModels"]),
            "systemPrompt": system_prompt,
            "temperature": s["temperature"],
            "topP": s["topP"],
            "maxTokens": s["maxTokens"],
            "safetyGuardrails": {
                "blockedCategories": sorted(set(g["blockedCategories"])),
                "contentFiltering": sorted(set(g["contentFiltering"])),
                "maxTokens": g["maxTokens"],
            },
        }
        if s.get("version") is not None:
            out["version"] = s["version"]
        floats(out, "temperature", "topP")
        return out

    def body(
        self, fields: Mapping[str, Any], template_id: Any, only: set[str] | None = None
    ) -> dict[str, Any]:
        """The remote body of a prompt; ``only`` limits it to some manifest fields (a
        merge-PUT). A field the desired state lacks but ``only`` names is sent as null
        (removed remotely)."""
        g = fields.get("safetyGuardrails") or {}
        full: dict[str, Any] = {
            "template": (F.template_id, template_id if "template" in fields else None),
            "model": (F.model, fields.get("model")),
            "fallbackModels": (F.fallbacks, list(fields.get("fallbackModels") or [])),
            "systemPrompt": (F.system_prompt, fields.get("systemPrompt")),
            "version": (F.version, fields.get("version")),
            "temperature": (F.temperature, fields.get("temperature")),
            "topP": (F.top_p, fields.get("topP")),
            "maxTokens": (F.max_tokens, fields.get("maxTokens")),
            "safetyGuardrails": (
                F.guardrails,
                {
                    F.content_filtering: list(g.get("contentFiltering") or []),
                    F.guard_max_tokens: g.get("maxTokens", 4096),
                    F.blocked_categories: list(g.get("blockedCategories") or []),
                },
            ),
            "labels": (FIELDS.labels, dict(fields.get("labels") or {})),
        }
        names = list(full) if only is None else [n for n in full if n in only]
        body = {full[n][0]: full[n][1] for n in names}
        if only is None:
            body = {k: v for k, v in body.items() if v is not None}
        return body

    # -- the live org --
    def live(
        self,
        raw: Mapping[str, Any],
        template_names: Mapping[str, str],
        *,
        endpoint: str = PATHS.prompts,
    ) -> tuple[Obj, Obj | None]:
        """The Prompt, and its TrafficSplit when the remote object has a traffic
        distribution."""
        e = Entity(raw, endpoint, "prompt", F.name)
        name = e.required(F.name, e.string(F.name))
        pid = e.identity(F.id)
        g = e.sub(F.guardrails)
        tid = e.string(F.template_id) or ""
        spec: dict[str, Any] = {
            # an unbound prompt (seed 003 creates one) has no template: "" shows as the change
            "template": template_names.get(tid, f"id:{tid}") if tid else "",
            "model": e.string(F.model) or e.string(F.model_alias) or "",
            "fallbackModels": list(e.strings(F.fallbacks) or []),
            "systemPrompt": e.string(F.system_prompt) or "",
            "temperature": e.number(F.temperature),
            "topP": e.number(F.top_p),
            "maxTokens": e.integer(F.max_tokens),
            "version": e.string(F.version),
            "safetyGuardrails": {
                k: v
                for k, v in {
                    "contentFiltering": g.strings(F.content_filtering) if g else None,
                    "maxTokens": g.integer(F.guard_max_tokens) if g else None,
                    "blockedCategories": g.strings(F.blocked_categories) if g else None,
                }.items()
                if v is not None
            },
        }
        spec = {k: v for k, v in spec.items() if v is not None}
        fields = self.normal(spec, spec["systemPrompt"])
        fields["labels"] = e.labels()
        etag = e.etag(F.etag)
        prompt = Obj(
            KIND,
            name,
            fields,
            remote_id=pid,
            precondition=etag,
            managed=e.managed(),
            status=e.string(F.status),
            state_labels=e.state_labels(),
        )
        td = e.sub(F.traffic)
        split = None
        if td is not None and td.raw:
            default = td.string(F.td_default)
            if default is not None:
                sf: dict[str, Any] = {"defaultVersion": default}
            else:
                entries = td.items(F.td_versions) or []
                versions: list[dict[str, Any]] = []
                for i, entry in enumerate(entries):
                    item = Entity(entry, endpoint, e.label, "", f"{td.prefix}{F.td_versions}[{i}].")
                    if not isinstance(entry, Mapping):
                        raise item.fail("", f"is {shown(entry)}, not an object")
                    version = item.required("version", item.string("version"))
                    weight = item.required("weight", item.number("weight"))
                    if any(v["version"] == version for v in versions):
                        raise item.fail("version", f"{shown(version)} is listed twice")
                    versions.append({"version": version, "weight": weight})
                sf = SPLIT_RESOURCE.normal(
                    {"strategy": td.string(F.td_strategy), "versions": versions}
                )
            split = Obj(
                SPLIT,
                name,
                sf,
                remote_id=pid,
                precondition=etag,
                managed=prompt.managed,
                state_labels=prompt.state_labels,
            )
        return prompt, split

    async def read(self, reader: Reader, state: LiveState, scope: ReadScope) -> None:
        seen = Unique(PATHS.models, "models")
        for raw in await reader.list(PATHS.models):
            model = live_model(raw)
            seen.add(FIELDS.model.id, model[FIELDS.model.id])
            state.models[model[FIELDS.model.id]] = model
        names = {str(t.remote_id): t.key for t in state.of_kind(TEMPLATE)}
        seen = Unique(PATHS.prompts, "prompts")
        for raw in await reader.list(PATHS.prompts):
            prompt, split = self.live(raw, names)
            seen.add(F.name, prompt.key, prompt.remote_id)
            seen.add(F.id, str(prompt.remote_id))
            state.objects[prompt.ref] = prompt
            if split is not None:
                state.objects[split.ref] = split

    def follow_rename(self, state: LiveState, kind: str, old: str, new: str) -> None:
        """Renamed itself (its split with it: see ``TrafficSplit``), or its template renamed:
        bound by id, it names the template by its new name."""
        super().follow_rename(state, kind, old, new)
        if kind != TEMPLATE:
            return
        for ref, obj in list(state.objects.items()):
            if obj.kind == KIND and obj.fields.get("template") == old:
                fields = {**obj.fields, "template": new}
                state.objects[ref] = dataclasses.replace(obj, fields=fields)

    # -- planning --
    def plan(self, ctx: PlanContext) -> None:
        names = sorted({o.key for o in ctx.of_kind(KIND)} | {o.key for o in ctx.of_kind(SPLIT)})
        for name in names:
            self._plan(ctx, name)

    def _check_refs(self, ctx: PlanContext, want: Obj) -> None:
        f = want.fields
        if not ctx.exists(f"{TEMPLATE}/{f['template']}"):
            ctx.problem(
                want,
                "spec.template",
                f"{TEMPLATE} {f['template']} is neither in the manifests nor in the org",
                "add the template's manifest",
            )
        models = ctx.live.models
        if not models:
            return
        model = models.get(f["model"])
        if model is None:
            ctx.problem(
                want,
                "spec.model",
                f"model {f['model']} is not in the org's model list",
                "use one of: " + ", ".join(sorted(models)),
            )
        else:
            limit = model.get(FIELDS.model.max_output_tokens)
            if isinstance(limit, int) and f["maxTokens"] > limit:
                ctx.problem(
                    want,
                    "spec.maxTokens",
                    f"{f['maxTokens']} exceeds the model's maxOutputTokens {limit}",
                    f"set maxTokens to at most {limit}",
                )
        for i, fb in enumerate(f["fallbackModels"]):
            if fb not in models:
                ctx.problem(
                    want,
                    f"spec.fallbackModels[{i}]",
                    f"fallback model {fb} is not in the org's model list",
                    "use one of: " + ", ".join(sorted(models)),
                )

    def _check_split_refs(self, ctx: PlanContext, split: Obj, template: str | None) -> None:
        if template is None:
            return
        versions = (
            [split.fields["defaultVersion"]]
            if "defaultVersion" in split.fields
            else list(split.fields["versions"])
        )
        rollout = _rollout(split)
        if rollout is not None and rollout.stable not in versions:
            versions.append(rollout.stable)  # the rollout routes to it first
        listed = ctx.live.listed.get(VERSION, set())
        for v in versions:
            ref = f"{VERSION}/{template}@{v}"
            version = ctx.desired.get(ref) or ctx.live.get(ref)
            if version is None and (template in listed or f"{TEMPLATE}/{template}" in ctx.creating):
                ctx.problem(
                    split,
                    "spec.versions",
                    f"version {v} of {template} is neither in the manifests nor in the org",
                    "add its PromptVersion manifest",
                )
            elif version is not None and version.fields.get("rollbackDirective"):
                ctx.problem(
                    split,
                    "spec.versions",
                    f"routes traffic to {template}@{v}, "
                    "which is withdrawn (rollbackDirective: true)",
                    "move its traffic to another version",
                )

    def _plan(self, ctx: PlanContext, name: str) -> None:
        dp, ds = ctx.desired.get(f"{KIND}/{name}"), ctx.desired.get(f"{SPLIT}/{name}")
        lp, ls = ctx.live.get(f"{KIND}/{name}"), ctx.live.get(f"{SPLIT}/{name}")
        if dp is not None:
            self._check_refs(ctx, dp)
        template = dp.fields["template"] if dp else lp.fields["template"] if lp else None
        if ds is not None:
            self._check_split_refs(ctx, ds, template)
        if lp is None:
            if dp is None:
                assert ds is not None
                ctx.problem(
                    ds,
                    "spec.prompt",
                    f"{KIND} {name} is neither in the manifests nor in the org",
                    "add the Prompt manifest",
                )
                return
            body: dict[str, Any] = self.body(
                dp.fields, ctx.remote_id(TEMPLATE, dp.fields["template"])
            )
            body[F.name] = name
            changes = created(dp)
            covers: tuple[str, ...] = (dp.ref,)
            reason = ""
            if ds is not None:
                rollout = _rollout(ds)
                split = ds.fields if rollout is None else rollout.split(0)
                body[F.traffic] = SPLIT_RESOURCE.body(split)
                changes += _prefixed(diff({}, split), TRAFFIC)
                covers += (ds.ref,)
                if rollout is not None:  # all traffic on stable first: `rollout advance` steps
                    first = labels.Position(rollout.id, 0, 0.0, labels.PROGRESSING)
                    body[FIELDS.labels] = {
                        **body.get(FIELDS.labels, {}),
                        **labels.encode(first, since=ServerTime()),
                    }
                    reason = (
                        f"create with all traffic on {rollout.stable}; the rollout to "
                        f"{rollout.canary} starts at the next `llmgw rollout advance`"
                    )
            ctx.operation(
                self,
                OpType.CREATE,
                name,
                reason=reason,
                requests=(Request("POST", PATHS.prompts, body=body),),
                changes=changes,
                want=dp,
                covers=covers,
            )
            return
        p_changes = renaming(lp) + diff(lp.fields, dp.fields) if dp is not None else ()
        s_changes = diff(ls.fields if ls else {}, ds.fields) if ds is not None else ()
        rollout = _rollout(ds) if ds is not None else None
        if rollout is not None and ds is not None and _rollout_renamed(ctx, rollout, lp, ds):
            return
        held, split_reason = "", ""
        start: labels.Position | None = None
        if rollout is not None and ds is not None:
            held, start = _rollout_plan(ctx, rollout, lp, ls, ds, bool(s_changes))
            if held:
                s_changes = ()  # the rollout moves the weights, not plan
            elif start is not None:
                s_changes = diff(ls.fields if ls else {}, rollout.split(1))
                split_reason = (
                    f"start rollout {rollout.stable} -> {rollout.canary} at "
                    f"{rollout_spec.percent(rollout.steps[0])}"
                )
        if not p_changes and not s_changes:
            for want, res in ((dp, self), (ds, SPLIT_RESOURCE)):
                if want is not None:
                    reason = held if res is SPLIT_RESOURCE else ""
                    ctx.operation(res, OpType.NOOP, name, have=lp, want=want, reason=reason)
            return
        # the operation is the Prompt's when its fields change, else its split's
        main = dp if p_changes else ds
        resource: Resource = self if p_changes else SPLIT_RESOURCE
        assert main is not None
        # only a Prompt manifest adopts the remote object (a split alone sends no labels)
        action = ctx.decide(resource, main, lp, p_changes + s_changes, adopt=dp is not None)
        if action is None:
            return
        body = {}
        if p_changes and dp is not None:
            body = self.body(
                dp.fields, ctx.remote_id(TEMPLATE, dp.fields["template"]), top_fields(p_changes)
            )
            if lp.renamed_from is not None:  # a rename: the merge-PUT carries the new name
                body[F.name] = name
        if s_changes and ds is not None:
            body[F.traffic] = SPLIT_RESOURCE.body(
                rollout.split(1) if start is not None and rollout is not None else ds.fields
            )
        if start is not None:
            live_labels = body.get(FIELDS.labels, lp.labels)
            body[FIELDS.labels] = {
                **dict(live_labels),
                **labels.without_rollout(lp.state_labels),
                **labels.encode(start, since=ServerTime()),
            }
        elif FIELDS.labels in body and lp.state_labels:  # a labels write keeps llmgw's state
            body[FIELDS.labels] = {**body[FIELDS.labels], **lp.state_labels}
        covers = tuple(d.ref for d, c in ((dp, p_changes), (ds, s_changes)) if d is not None and c)
        request = self.guarded("PUT", PATHS.prompt, {PARAMS.prompt_id: lp.remote_id}, lp, body)
        if not split_reason and resource is SPLIT_RESOURCE and action == OpType.UPDATE:
            split_reason = "traffic split differs"
        if split_reason and lp.renamed_from is not None:
            split_reason = f"rename {lp.renamed_from} -> {name}; {split_reason}"
        ctx.operation(
            resource,
            action,
            name,
            reason=split_reason if resource is SPLIT_RESOURCE or start is not None else "",
            requests=(request,),
            changes=p_changes + _prefixed(s_changes, TRAFFIC),
            have=lp,
            want=main,
            covers=covers,
        )
        if p_changes and ds is not None and not s_changes:
            ctx.operation(SPLIT_RESOURCE, OpType.NOOP, name, have=lp, want=ds, reason=held)

    def orphan(self, have: Obj, desired: Mapping[str, Obj]) -> bool:
        return f"{SPLIT}/{have.key}" not in desired  # its split is still managed from git

    def delete(self, have: Obj, ctx: PlanContext) -> tuple[Request, ...] | None:
        return (self.guarded("DELETE", PATHS.prompt, {PARAMS.prompt_id: have.remote_id}, have),)

    # -- applying --
    def own_path(self, key: str, method: str, ids: Mapping[str, str]) -> str | None:
        return _path(key, method, ids)

    def record(self, op: Operation, body: Mapping[str, Any], etag: str | None) -> Recorded:
        return _record(op, body, etag)

    # -- export --
    def export(self, live: LiveState, keep: Callable[[Obj], bool]) -> list[ExportDocs]:
        templates = {o.key for o in live.of_kind(TEMPLATE)}
        out = []
        for prompt in sorted_live(live, KIND):
            if prompt.fields.get("template") not in templates:
                continue  # bound to no template a manifest can name: export.unexportable
            docs, refs = [], []
            if keep(prompt):
                docs.append(
                    common.document(KIND, prompt.key, prompt, common.spec_of(prompt.fields))
                )
                refs.append(prompt.ref)
            split = live.get(f"{SPLIT}/{prompt.key}")
            if split is not None and keep(split):
                docs.append(common.document(SPLIT, prompt.key, None, SPLIT_RESOURCE.spec_of(split)))
                refs.append(split.ref)
            if docs:
                out.append(
                    ExportDocs(
                        f"prompts/{common.filename(prompt.key)}.yaml", tuple(docs), tuple(refs)
                    )
                )
        return out

    def unexportable(self, live: LiveState) -> list[str]:
        """Prompts no manifest can describe: bound to no template (a prompt created without
        one, as seed 003 does) or to a template the org no longer lists."""
        templates = {o.key for o in live.of_kind(TEMPLATE)}
        return sorted(
            p.ref for p in live.of_kind(KIND) if p.fields.get("template") not in templates
        )


class TrafficSplit(Resource):
    """The split of a prompt's traffic over its template's versions (seeds 003, 000): owned by
    the Prompt, whose remote object holds it; planned, read, recorded and exported there."""

    kind: ClassVar[str] = SPLIT
    precondition_word: ClassVar[str] = HEADERS.etag
    schema_file: ClassVar[str] = "traffic-split.schema.json"
    rank: ClassVar[int] = 3
    phase: ClassVar[Phase] = Phase.PROMPTS
    owner: ClassVar[str | None] = KIND
    shown_under: ClassVar[str | None] = TRAFFIC
    labelled: ClassVar[bool] = False  # the Prompt owns the remote object's labels
    mirrored: ClassVar[bool] = True
    rename_refusal: ClassVar[tuple[str, str]] = (
        "a TrafficSplit is its prompt's, and is renamed with it",
        "put the annotation on the Prompt's manifest (the split follows it)",
    )
    identity_fields = (("metadata", "name"), ("spec", "prompt"))
    writes: ClassVar[Writes] = {a: (("PUT", PATHS.prompt),) for a in EDITS}

    def identity(self, name: str, spec: Mapping[str, Any]) -> str | None:
        return common.s(spec.get("prompt")) or None

    def check(self, doc: Document, emit: Emit) -> None:
        spec = doc.spec
        prompt = common.s(spec.get("prompt"))
        if prompt and doc.name and doc.name != prompt:
            emit(
                ("metadata", "name"),
                f"must equal spec.prompt ({visible(prompt, NAME)})",
                f"set metadata.name to {visible(prompt, NAME)}",
                rule=common.IDENTITY_MATCH,
            )
        versions, default = spec.get("versions"), spec.get("defaultVersion")
        if versions is None and default is None:
            emit(
                ("spec",),
                "needs either `versions` (weighted) or `defaultVersion` (all traffic)",
                "add spec.versions or spec.defaultVersion",
                rule=common.SPLIT_FORM,
            )
        elif versions is not None and default is not None:
            emit(
                ("spec", "defaultVersion"),
                "`versions` and `defaultVersion` cannot both be set",
                "keep one of them",
                rule=common.SPLIT_FORM,
            )
        if default is not None and "strategy" in spec:
            emit(
                ("spec", "strategy"),
                "strategy applies only to weighted `versions`",
                "remove strategy, or list versions with weights",
                rule=common.SPLIT_FORM,
            )
        if isinstance(versions, list):
            seen: dict[str, int] = {}
            total = 0.0
            numeric = True
            for i, entry in enumerate(versions):
                if not isinstance(entry, dict):
                    numeric = False
                    continue
                v, w = common.s(entry.get("version")), common.num(entry.get("weight"))
                if v is not None:
                    if v in seen:
                        emit(
                            ("spec", "versions", i, "version"),
                            f"version {shown(v)} is listed twice (also entry {seen[v] + 1})",
                            "list each version once, with its total weight",
                            rule=common.SPLIT_FORM,
                        )
                    seen.setdefault(v, i)
                if w is None:
                    numeric = False
                else:
                    total += w
            if numeric and versions and abs(total - 1.0) > WEIGHT_TOLERANCE:
                emit(
                    ("spec", "versions"),
                    f"weights sum to {round(total, 4)}, not 1.0 (within {WEIGHT_TOLERANCE})",
                    "adjust the weights so they add up to 1.0",
                    line=doc.locations.key_line(("spec", "versions")),
                    rule=common.SPLIT_WEIGHTS,
                )
        block = spec.get("rollout")
        end = _end_state(spec)
        if isinstance(block, dict) and end is not None:
            for path, message, fix in rollout_spec.problems(block, end):
                emit(("spec", "rollout", *path), message, fix, rule=common.ROLLOUT)

    def check_set(self, index: DocIndex) -> list[Problem]:
        templates = index.keys(TEMPLATE)
        out: list[Problem] = common.references(index, SPLIT, "prompt", KIND)
        for doc in index.of_kind(SPLIT):
            spec = doc.spec
            p = common.s(spec.get("prompt"))
            if not p:
                continue
            prompt = index.get(KIND, p)
            if prompt is None:
                continue  # common.references says so
            template = common.s(prompt.spec.get("template"))
            if not template:
                continue
            refs: list[tuple[Path, str]] = []
            if isinstance(spec.get("versions"), list):
                refs = [
                    (("spec", "versions", i, "version"), e["version"])
                    for i, e in enumerate(spec["versions"])
                    if isinstance(e, dict) and isinstance(e.get("version"), str)
                ]
            if isinstance(spec.get("defaultVersion"), str):
                refs.append((("spec", "defaultVersion"), spec["defaultVersion"]))
            block = spec.get("rollout")
            if isinstance(block, dict) and isinstance(block.get("from"), str):
                refs.append((("spec", "rollout", "from"), block["from"]))
            for path, v in refs:
                vdoc = index.get(VERSION, f"{template}@{v}")
                if vdoc is None:
                    if template in templates:
                        out.append(
                            reference_warning(
                                doc,
                                path,
                                f"{VERSION} {visible(f'{template}@{v}', NAME)}",
                                common.REFERENCE,
                            )
                        )
                elif vdoc.spec.get("rollbackDirective") is True:
                    out.append(
                        doc_problem(
                            doc,
                            path,
                            f"routes traffic to {visible(f'{template}@{v}', NAME)}, which is "
                            f"withdrawn (rollbackDirective: true at {vdoc.file}:"
                            f"{vdoc.line_of(('spec', 'rollbackDirective'))})",
                            "move its traffic to another version first",
                            rule=common.SPLIT_WITHDRAWN,
                        )
                    )
        return out

    def refers(self, obj: Obj) -> tuple[tuple[str, str], ...]:
        return ((KIND, obj.key),)

    def fields(self, doc: Document) -> dict[str, Any]:
        return self.normal(doc.spec)

    def held(self, want: Obj, have: Obj) -> tuple[Obj, str]:
        """A rollout in progress, paused or aborted holds the weights: never drift."""
        rollout = _rollout(want)
        if rollout is None:
            return want, ""
        pos = labels.position(have.state_labels)
        if pos is None or pos.rollout_id != rollout.id or pos.state == labels.DONE:
            return want, ""
        return dataclasses.replace(want, fields=dict(have.fields)), _at_step(rollout, pos)

    def desired(self, doc: Document) -> Obj:
        """The end state as the split's fields, its rollout block (typed) as a setting."""
        obj = super().desired(doc)
        block = doc.spec.get("rollout")
        if isinstance(block, dict):
            rollout = rollout_spec.read(obj.key, block, obj.fields)
            if rollout is not None:
                obj.settings["rollout"] = rollout
        return obj

    def normal(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        if spec.get("defaultVersion") is not None:
            return {"defaultVersion": spec["defaultVersion"]}
        versions = {str(e["version"]): float(e["weight"]) for e in spec.get("versions") or []}
        return {
            "strategy": spec.get("strategy") or "random",
            "versions": dict(sorted(versions.items())),
        }

    def body(self, split: Mapping[str, Any]) -> dict[str, Any]:
        if "defaultVersion" in split:
            return {F.td_default: split["defaultVersion"]}
        return {
            F.td_versions: [{"version": v, "weight": w} for v, w in split["versions"].items()],
            F.td_strategy: split["strategy"],
        }

    def spec_of(self, split: Obj) -> dict[str, Any]:
        if "defaultVersion" in split.fields:
            return {"prompt": split.key, "defaultVersion": split.fields["defaultVersion"]}
        return {
            "prompt": split.key,
            "strategy": split.fields["strategy"],
            "versions": [{"version": v, "weight": w} for v, w in split.fields["versions"].items()],
        }

    def plan(self, ctx: PlanContext) -> None:
        """Planned with its Prompt (one remote object): see ``Prompt.plan``."""

    def own_path(self, key: str, method: str, ids: Mapping[str, str]) -> str | None:
        return _path(key, method, ids)

    def record(self, op: Operation, body: Mapping[str, Any], etag: str | None) -> Recorded:
        return _record(op, body, etag)


def _rollout(split: Obj) -> rollout_spec.Rollout | None:
    r = split.settings.get("rollout")
    return r if isinstance(r, rollout_spec.Rollout) else None


def _at_step(rollout: rollout_spec.Rollout, pos: labels.Position) -> str:
    """``rollout 2.0.0 -> 2.1.0 progressing at step 2 of 3 (25 %)``: what plan and drift say of
    a split a rollout holds."""
    weight = rollout.canary_weight(pos.step)
    return (
        f"rollout {rollout.stable} -> {rollout.canary} {pos.state} at step {pos.step} of "
        f"{len(rollout.steps)} ({rollout_spec.percent(weight)})"
    )


def _rollout_renamed(ctx: PlanContext, rollout: rollout_spec.Rollout, lp: Obj, ds: Obj) -> bool:
    """A rollout's identity holds its prompt's name, so renaming a prompt while its rollout
    runs, is paused or stays aborted would start that rollout again from step 1: a problem
    (True) until it is finished or its block removed."""
    if lp.renamed_from is None:
        return False
    pos = labels.position(lp.state_labels)
    before = dataclasses.replace(rollout, prompt=lp.renamed_from).id
    if pos is None or pos.rollout_id != before or pos.state == labels.DONE:
        return False
    ctx.problem(
        ds,
        "spec.rollout",
        f"the rollout {rollout.stable} -> {rollout.canary} of {lp.renamed_from} is {pos.state} "
        f"at step {pos.step}: renaming the prompt now would start it again from step 1",
        f"let it finish (or `llmgw rollout promote {lp.renamed_from}`) before renaming the "
        "prompt, or remove the rollout block first",
    )
    return True


def _rollout_plan(
    ctx: PlanContext,
    rollout: rollout_spec.Rollout,
    lp: Obj,
    ls: Obj | None,
    ds: Obj,
    differs: bool,
) -> tuple[str, labels.Position | None]:
    """How plan treats a split with a rollout block over a live prompt: held (the reason: the
    rollout in progress moves the weights, or it stays aborted), started (step 1's position),
    or neither (the live split is the end state already, or the rollout is done)."""
    pos = labels.position(lp.state_labels)
    if pos is not None and pos.rollout_id == rollout.id:
        where = f"rollout {rollout.stable} -> {rollout.canary}"
        if pos.state == labels.ABORTED:
            return (
                f"{where} was aborted: it stays aborted until its rollout block or its canary "
                f"changes, or `llmgw rollout resume {lp.key}`",
                None,
            )
        if pos.state in (labels.PROGRESSING, labels.PAUSED):
            return f"{_at_step(rollout, pos)}: `llmgw rollout advance` moves it", None
    if not differs:
        return "", None  # the live split is the end state already (or the rollout is done)
    live_versions = set(rollout_spec.end_versions(ls.fields)) if ls is not None else set()
    others = sorted(live_versions - {rollout.stable, rollout.canary})
    if others:
        ctx.problem(
            ds,
            "spec.rollout.from",
            f"live traffic goes to {', '.join(others)}, not only to {rollout.stable} (from) "
            f"and {rollout.canary} (the canary): the rollout would move it without judging it",
            "set rollout.from to the version live traffic uses now, or move its traffic first",
        )
        return "", None
    return "", labels.Position(rollout.id, 1, 0.0, labels.PROGRESSING)


def _end_state(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """A split document's end state in ``TrafficSplit.normal``'s shape, None while its shape
    is wrong (the schema says why)."""
    default, versions = spec.get("defaultVersion"), spec.get("versions")
    if isinstance(default, str):
        return {"defaultVersion": default}
    if isinstance(versions, list) and all(
        isinstance(e, dict)
        and isinstance(e.get("version"), str)
        and common.num(e.get("weight")) is not None
        for e in versions
    ):
        return SPLIT_RESOURCE.normal({"versions": versions, "strategy": spec.get("strategy")})
    return None


def live_model(raw: Mapping[str, Any], *, endpoint: str = PATHS.models) -> dict[str, Any]:
    """A model record as planning reads it: ``id`` a string, the token limits integers."""
    m = FIELDS.model
    e = Entity(raw, endpoint, "model", m.id)
    e.required(m.id, e.string(m.id))
    e.string(m.provider)
    e.integer(m.context_window)
    e.integer(m.max_output_tokens)
    return dict(raw)


RESOURCE = Prompt()
SPLIT_RESOURCE = TrafficSplit()
