"""Semantic rules beyond the JSON Schemas, each from a tutorial, run offline.

Every rule runs on every document it can run on, also one that failed its schema, so one run
shows all problems; so each rule checks the types it relies on instead of trusting the schema.
Rules never read the network or the clock: references that only the live org can settle are
warnings here, and ``plan`` makes them errors unless the org has the object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from reconciler import tokens, urls
from reconciler.fewshot import render_system_prompt
from reconciler.model import (
    ALLOW_REPLACE_ANNOTATION,
    MANAGED_LABEL,
    MANAGED_VALUE,
    Document,
    Kind,
    Path,
    Problem,
    format_path,
)

PLACEHOLDER = re.compile(r"\{\{([a-zA-Z_][a-zA-Z0-9_]*)\}\}")  # seed 000's pattern
VERSION_MAX_BYTES = 4096  # seed 000
VERSION_MAX_TOKENS = 3800  # seed 000
PROMPT_MAX_CHARS = 8000  # seed 001
WEIGHT_TOLERANCE = 0.01  # seed 003

# Seed 002: blocked at definition time (template patterns) and at run time (runtime patterns).
INJECTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (label, re.compile(rx, re.IGNORECASE | re.MULTILINE))
    for label, rx in [
        ("ignore previous instructions", r"ignore\s+previous\s+instructions"),
        ("system prompt override", r"system\s+prompt\s+override"),
        ("begin secret mode", r"begin\s+secret\s+mode"),
        ("<|im_start|>", r"<\|im_start\|>"),
        ("<|im_end|>", r"<\|im_end\|>"),
        ("a line starting YOU ARE NOW AN AI", r"^[ \t]*you\s+are\s+now\s+an\s+ai"),
        ("execute system command", r"execute\s+system\s+command"),
        ("bypass security", r"bypass\s+security"),
        ("ignore rules", r"ignore\s+rules"),
        ("output only the following", r"output\s+only\s+the\s+following"),
        ("<|mask|>", r"<\|mask\|>"),
        ("<|reserved|>", r"<\|reserved\|>"),
    ]
]


class _Emit:
    """Collects problems about one document."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def __call__(
        self,
        path: Path,
        message: str,
        fix: str = "",
        *,
        line: int | None = None,
        severity: str = "error",
    ) -> None:
        d = self.doc
        self.problems.append(
            Problem(
                d.file,
                line if line is not None else d.line_of(path),
                severity,
                d.kind,
                d.name,
                format_path(path),
                message,
                fix,
            )
        )


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def check_document(doc: Document) -> list[Problem]:
    emit = _Emit(doc)
    _labels(doc, emit)
    checker = _CHECKS.get(doc.kind)
    if checker is not None:
        checker(doc, emit)
    return emit.problems


def _labels(doc: Document, emit: _Emit) -> None:
    value = doc.labels.get(MANAGED_LABEL)
    if value is not None and value != MANAGED_VALUE:
        emit(
            ("metadata", "labels", MANAGED_LABEL),
            f"the label `{MANAGED_LABEL}` is reserved for llmgw (got {value!r})",
            f"remove it; llmgw sets {MANAGED_LABEL}: {MANAGED_VALUE} itself",
        )
    for key, val in doc.annotations.items():
        path = ("metadata", "annotations", key)
        if key == ALLOW_REPLACE_ANNOTATION and val not in ("true", "false"):
            emit(path, f'must be "true" or "false" (got {val!r})', 'quote it: "true"')
        elif isinstance(key, str) and key.startswith("llmgw/") and key != ALLOW_REPLACE_ANNOTATION:
            emit(
                path,
                f"unknown llmgw annotation `{key}`",
                f"the only llmgw annotation is {ALLOW_REPLACE_ANNOTATION}",
                severity="warning",
                line=doc.locations.key_line(path),
            )


def _injection(emit: _Emit, path: Path, text: Any) -> None:
    if not isinstance(text, str):
        return
    for label, rx in INJECTION_PATTERNS:
        m = rx.search(text)
        if m:
            emit(
                path,
                f"contains the prompt-injection pattern {label!r} (matched {m.group(0).strip()!r})",
                "remove or rephrase it: the gateway blocks these patterns",
                line=emit.doc.locations.text_line(path, m.start()),
            )


def _placeholders(
    emit: _Emit,
    text_path: Path,
    text: Any,
    names: Iterable[str],
    name_lines: dict[str, int],
    container: str,
) -> None:
    """Placeholders of ``text`` must equal ``names``: report missing and unused both."""
    if not isinstance(text, str):
        return
    declared = set(names)
    used: dict[str, int] = {}
    for m in PLACEHOLDER.finditer(text):
        used.setdefault(m.group(1), m.start())
    for name, offset in used.items():
        if name not in declared:
            emit(
                text_path,
                f"placeholder {{{{{name}}}}} is not declared in {container}",
                f"add {name} to spec.{container}",
                line=emit.doc.locations.text_line(text_path, offset),
            )
    for name in sorted(declared - set(used)):
        field = text_path[-1]
        emit(
            ("spec", container),
            f"variable {name!r} is not used in {field}",
            f"remove it from spec.{container} or use {{{{{name}}}}} in {field}",
            line=name_lines.get(name),
        )


def _check_template(doc: Document, emit: _Emit) -> None:
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
        _placeholders(
            emit, ("spec", "userTemplate"), spec.get("userTemplate"), names, lines, "variables"
        )
    for f in ("systemInstruction", "userTemplate", "description"):
        _injection(emit, ("spec", f), spec.get(f))
    system, user = _s(spec.get("systemInstruction")), _s(spec.get("userTemplate"))
    limit = spec.get("maxTokens", 4096)
    if system is not None and user is not None and isinstance(limit, int):
        n = tokens.count(f"{system}\n{user}")
        if n > limit:
            path = ("spec", "maxTokens") if "maxTokens" in spec else ("spec", "userTemplate")
            emit(
                path,
                f"systemInstruction + userTemplate are {n} tokens ({tokens.ENCODING}), "
                f"over maxTokens {limit}",
                "shorten the texts or raise spec.maxTokens (at most 128000)",
            )


def _check_version(doc: Document, emit: _Emit) -> None:
    spec = doc.spec
    template, version = _s(spec.get("template")), _s(spec.get("version"))
    if template and version and doc.name and doc.name != f"{template}@{version}":
        emit(
            ("metadata", "name"),
            f"must be {template}@{version} (spec.template@spec.version)",
            f"set metadata.name to {template}@{version}",
        )
    matrix = spec.get("variables")
    if isinstance(matrix, dict):
        lines = {k: doc.locations.key_line(("spec", "variables", k)) for k in matrix}
        _placeholders(emit, ("spec", "content"), spec.get("content"), matrix, lines, "variables")
    content = spec.get("content")
    _injection(emit, ("spec", "content"), content)
    if isinstance(content, str):
        size = len(content.encode("utf-8"))
        if size > VERSION_MAX_BYTES:
            emit(
                ("spec", "content"),
                f"is {size} bytes of UTF-8, over the {VERSION_MAX_BYTES}-byte limit",
                "shorten the content",
            )
        n = tokens.count(content)
        if n > VERSION_MAX_TOKENS:
            emit(
                ("spec", "content"),
                f"is {n} tokens ({tokens.ENCODING}), over {VERSION_MAX_TOKENS}",
                "shorten the content",
            )
        est = tokens.server_estimate(content)
        if est > VERSION_MAX_TOKENS:
            emit(
                ("spec", "content"),
                f"is {est:.0f} tokens by the gateway's estimate "
                f"(characters / 4), over {VERSION_MAX_TOKENS}",
                "shorten the content",
            )
    ab = spec.get("abTest")
    if isinstance(ab, dict) and ab.get("enabled") is True:
        for f in ("trafficPercent", "variantId"):
            if f not in ab:
                emit(("spec", "abTest"), f"an enabled A/B test needs `{f}`", f"add spec.abTest.{f}")


def _check_prompt(doc: Document, emit: _Emit) -> None:
    spec = doc.spec
    _injection(emit, ("spec", "systemPrompt"), spec.get("systemPrompt"))
    few = spec.get("fewShot")
    examples = few.get("examples") if isinstance(few, dict) else None
    if isinstance(examples, list):
        for i, ex in enumerate(examples):
            if isinstance(ex, dict):
                for f in ("input", "output"):
                    _injection(emit, ("spec", "fewShot", "examples", i, f), ex.get(f))
    model, fallbacks = spec.get("model"), spec.get("fallbackModels")
    if isinstance(fallbacks, list) and isinstance(model, str) and model in fallbacks:
        emit(
            ("spec", "fallbackModels", fallbacks.index(model)),
            f"the primary model {model} is also listed as a fallback",
            "remove it from fallbackModels",
        )
    if not isinstance(spec.get("systemPrompt"), str):
        return
    rendered = render_system_prompt(spec)
    if isinstance(examples, list) and isinstance(few, dict):
        limit = few.get("contextWindowLimit")
        if not rendered.fits:
            emit(
                ("spec", "fewShot", "contextWindowLimit"),
                f"not even the newest few-shot example fits in contextWindowLimit {limit} tokens",
                "raise contextWindowLimit, or shorten the system prompt or the examples",
            )
        else:
            for i in rendered.dropped:
                ex = examples[i] if i < len(examples) and isinstance(examples[i], dict) else {}
                emit(
                    ("spec", "fewShot", "examples", i),
                    f"few-shot example {i + 1} ({str(ex.get('input', ''))[:40]!r}) is dropped: "
                    f"the rendered prompt exceeds contextWindowLimit {limit} tokens with it",
                    "remove it, or raise contextWindowLimit",
                    severity="warning",
                )
    text = rendered.text
    if len(text) > PROMPT_MAX_CHARS:
        emit(
            ("spec", "systemPrompt"),
            f"renders to {len(text)} characters, over the {PROMPT_MAX_CHARS}-character limit",
            "shorten the system prompt or the few-shot examples",
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
            )
        est = tokens.server_estimate(text)
        if est > limit:
            emit(
                where,
                f"the rendered system prompt is {est:.0f} tokens by the gateway's estimate "
                f"(characters / 4), over safetyGuardrails.maxTokens {limit}",
                "raise safetyGuardrails.maxTokens or shorten the system prompt",
            )


def _check_split(doc: Document, emit: _Emit) -> None:
    spec = doc.spec
    prompt = _s(spec.get("prompt"))
    if prompt and doc.name and doc.name != prompt:
        emit(
            ("metadata", "name"),
            f"must equal spec.prompt ({prompt})",
            f"set metadata.name to {prompt}",
        )
    versions, default = spec.get("versions"), spec.get("defaultVersion")
    if versions is None and default is None:
        emit(
            ("spec",),
            "needs either `versions` (weighted) or `defaultVersion` (all traffic)",
            "add spec.versions or spec.defaultVersion",
        )
    elif versions is not None and default is not None:
        emit(
            ("spec", "defaultVersion"),
            "`versions` and `defaultVersion` cannot both be set",
            "keep one of them",
        )
    if default is not None and "strategy" in spec:
        emit(
            ("spec", "strategy"),
            "strategy applies only to weighted `versions`",
            "remove strategy, or list versions with weights",
        )
    if isinstance(versions, list):
        seen: dict[str, int] = {}
        total = 0.0
        numeric = True
        for i, entry in enumerate(versions):
            if not isinstance(entry, dict):
                numeric = False
                continue
            v, w = _s(entry.get("version")), _num(entry.get("weight"))
            if v is not None:
                if v in seen:
                    emit(
                        ("spec", "versions", i, "version"),
                        f"version {v} is listed twice (also entry {seen[v] + 1})",
                        "list each version once, with its total weight",
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
            )


def _check_index(doc: Document, emit: _Emit) -> None:
    url = doc.spec.get("webhookSyncUrl")
    if isinstance(url, str):
        problem = url_problem(url)
        if problem:
            emit(
                ("spec", "webhookSyncUrl"),
                problem,
                "use an absolute https:// URL (http:// only to a loopback address)",
            )


is_loopback = urls.is_loopback


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an acceptable remote URL, or None (``reconciler.urls``)."""
    return urls.problem(url)


_CHECKS = {
    Kind.PROMPT_TEMPLATE.value: _check_template,
    Kind.PROMPT_VERSION.value: _check_version,
    Kind.PROMPT.value: _check_prompt,
    Kind.TRAFFIC_SPLIT.value: _check_split,
    Kind.VECTOR_INDEX.value: _check_index,
}


def check_set(docs: list[Document]) -> list[Problem]:
    """Rules across documents: duplicate identities, references, withdrawn versions in splits."""
    problems: list[Problem] = []
    first: dict[tuple[str, str], Document] = {}
    for doc in docs:
        key = doc.key
        if not key or doc.kind not in _CHECKS:
            continue
        other = first.get((doc.kind, key))
        if other is None:
            first[(doc.kind, key)] = doc
        else:
            problems.append(
                Problem(
                    doc.file,
                    doc.line,
                    "error",
                    doc.kind,
                    doc.name,
                    "",
                    f"{doc.kind} {key} is defined twice: here and at {other.file}:{other.line}",
                    "keep one definition",
                )
            )
    templates = {k for (kind, k) in first if kind == Kind.PROMPT_TEMPLATE.value}
    versions = {k: d for (kind, k), d in first.items() if kind == Kind.PROMPT_VERSION.value}
    prompts = {k: d for (kind, k), d in first.items() if kind == Kind.PROMPT.value}

    def warn(doc: Document, path: Path, what: str) -> None:
        problems.append(
            Problem(
                doc.file,
                doc.line_of(path),
                "warning",
                doc.kind,
                doc.name,
                format_path(path),
                f"{what} is not in the manifests; plan checks the live org",
                "",
            )
        )

    for doc in docs:
        spec = doc.spec
        if doc.kind in (Kind.PROMPT_VERSION.value, Kind.PROMPT.value):
            t = _s(spec.get("template"))
            if t and t not in templates:
                warn(doc, ("spec", "template"), f"PromptTemplate {t}")
        elif doc.kind == Kind.TRAFFIC_SPLIT.value:
            p = _s(spec.get("prompt"))
            if not p:
                continue
            prompt = prompts.get(p)
            if prompt is None:
                warn(doc, ("spec", "prompt"), f"Prompt {p}")
                continue
            template = _s(prompt.spec.get("template"))
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
            for path, v in refs:
                vdoc = versions.get(f"{template}@{v}")
                if vdoc is None:
                    if template in templates:
                        warn(doc, path, f"PromptVersion {template}@{v}")
                elif vdoc.spec.get("rollbackDirective") is True:
                    problems.append(
                        Problem(
                            doc.file,
                            doc.line_of(path),
                            "error",
                            doc.kind,
                            doc.name,
                            format_path(path),
                            f"routes traffic to {template}@{v}, which is withdrawn "
                            f"(rollbackDirective: true at {vdoc.file}:"
                            f"{vdoc.line_of(('spec', 'rollbackDirective'))})",
                            "move its traffic to another version first",
                        )
                    )
    return problems
