"""Semantic rules beyond the JSON Schemas, each from a tutorial, run offline.

Every rule runs on every document it can run on, also one that failed its schema, so one run
shows all problems; so each rule checks the types it relies on instead of trusting the schema.
Rules never read the network or the clock: references that only the live org can settle are
warnings here, and ``plan`` makes them errors unless the org has the object.

The rules the gateway itself applies to text (the placeholder grammar, injection patterns,
identity characters) come from ``textrules``, which the emulator runs too: whatever validates
here is accepted there. Every problem carries a rule id (``Problem.rule``). Quoted values go
through ``text.shown``, so a 200,000-character name makes a short message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler import textrules, tokens, urls
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
from reconciler.text import NAME, shown, visible
from reconciler.textrules import Finding

VERSION_MAX_BYTES = textrules.VERSION_MAX_BYTES
VERSION_MAX_TOKENS = textrules.VERSION_MAX_TOKENS
PROMPT_MAX_CHARS = textrules.PROMPT_MAX_CHARS
WEIGHT_TOLERANCE = textrules.WEIGHT_TOLERANCE
MATRIX_TYPES = frozenset({"string", "number", "boolean"})  # a matrix value that is not a default

# Rule ids of the checks below (those shared with the gateway come from textrules).
TOKEN_BUDGET = "tokens.budget"
CONTENT_SIZE = textrules.CONTENT_SIZE
CONTENT_TOKENS = textrules.CONTENT_TOKENS
PROMPT_LENGTH = textrules.PROMPT_LENGTH
PROMPT_TOKENS = textrules.PROMPT_TOKENS
FEW_SHOT = "fewshot.fit"
SPLIT_WEIGHTS = textrules.SPLIT_WEIGHTS
SPLIT_FORM = "split.form"
SPLIT_WITHDRAWN = "split.withdrawn"
IDENTITY_MATCH = "identity.name"
LABEL_RESERVED = "label.reserved"
ANNOTATION = "annotation"
URL = "url"
AB_TEST = "abtest.incomplete"
FALLBACK = "fallback.primary"
DUPLICATE = "identity.duplicate"
REFERENCE = "reference.missing"
PLACEHOLDER_TEXT = "placeholder.not-substituted"


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
        rule: str = "",
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
                rule,
            )
        )

    def finding(
        self, path: Path, f: Finding, *, line: int | None = None, severity: str = "error"
    ) -> None:
        """A textrules finding about the string at ``path`` (its offset gives the line)."""
        if line is None:
            line = self.doc.locations.text_line(path, f.offset) if f.offset >= 0 else None
        self(path, f.message, f.fix, line=line, severity=severity, rule=f.rule)


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def check_document(doc: Document) -> list[Problem]:
    emit = _Emit(doc)
    _labels(doc, emit)
    _identities(doc, emit)
    checker = _CHECKS.get(doc.kind)
    if checker is not None:
        checker(doc, emit)
    return emit.problems


def _labels(doc: Document, emit: _Emit) -> None:
    value = doc.labels.get(MANAGED_LABEL)
    if value is not None and value != MANAGED_VALUE:
        emit(
            ("metadata", "labels", MANAGED_LABEL),
            f"the label `{MANAGED_LABEL}` is reserved for llmgw (got {shown(value)})",
            f"remove it; llmgw sets {MANAGED_LABEL}: {MANAGED_VALUE} itself",
            rule=LABEL_RESERVED,
        )
    for key, val in doc.annotations.items():
        path = ("metadata", "annotations", key)
        if key == ALLOW_REPLACE_ANNOTATION and val not in ("true", "false"):
            emit(
                path,
                f'must be "true" or "false" (got {shown(val)})',
                'quote it: "true"',
                rule=ANNOTATION,
            )
        elif isinstance(key, str) and key.startswith("llmgw/") and key != ALLOW_REPLACE_ANNOTATION:
            emit(
                path,
                f"unknown llmgw annotation {shown(key)}",
                f"the only llmgw annotation is {ALLOW_REPLACE_ANNOTATION}",
                severity="warning",
                line=doc.locations.key_line(path),
                rule=ANNOTATION,
            )


# Fields whose value is an identity or becomes part of a request path, per kind.
_IDENTITY_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    Kind.PROMPT_TEMPLATE.value: (("metadata", "name"),),
    # versions are semver, which admits neither invisible characters nor `..`: the schema
    # says so, and a second message here would only repeat it
    Kind.PROMPT_VERSION.value: (("metadata", "name"), ("spec", "template")),
    Kind.PROMPT.value: (("metadata", "name"), ("spec", "template")),
    Kind.TRAFFIC_SPLIT.value: (("metadata", "name"), ("spec", "prompt")),
    Kind.VECTOR_INDEX.value: (("metadata", "name"), ("spec", "vectorStore")),
}


def _identities(doc: Document, emit: _Emit) -> None:
    """Names and path values: no invisible characters, whitespace or `..` (the schemas refuse
    ASCII controls, spaces, / ? # and backslash; this adds what a pattern cannot say)."""
    for path in _IDENTITY_FIELDS.get(doc.kind, ()):
        value = _at(doc.body, path)
        if isinstance(value, str):
            for f in textrules.identity_findings(value, ascii=False):
                emit(path, f.message, f.fix, rule=f.rule)


def _at(value: Any, path: Path) -> Any:
    """The value at ``path`` in plain YAML data, or None."""
    for part in path:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and part < len(value) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def _injection(emit: _Emit, path: Path, text: Any) -> None:
    """Every blocked pattern in a text that reaches the model (normalised: look-alike and
    invisible characters do not hide a pattern)."""
    if isinstance(text, str):
        for f in textrules.injection_findings(text):
            emit.finding(path, f)


def _placeholders(
    emit: _Emit,
    text_path: Path,
    text: Any,
    names: Iterable[str],
    name_lines: dict[str, int],
    container: str,
) -> None:
    """Placeholders of ``text`` must equal ``names``: report missing and unused both, and text
    that only looks like a placeholder (the gateway would send it as written)."""
    if not isinstance(text, str):
        return
    field = str(text_path[-1])
    for f in textrules.placeholder_findings(
        text, names, field=field, container=f"spec.{container}"
    ):
        if f.rule == textrules.PLACEHOLDER_UNUSED:
            name = f.message.split("'")[1] if "'" in f.message else ""
            emit.finding(("spec", container), f, line=name_lines.get(name))
        else:
            emit.finding(text_path, f)
    for f in textrules.lookalikes(text):
        emit.finding(text_path, f)


def _not_substituted(emit: _Emit, path: Path, text: Any, where: str) -> None:
    """A placeholder in a text the gateway does not fill is sent to the model as written."""
    if not isinstance(text, str):
        return
    for name, offset in textrules.placeholders(text).items():
        emit(
            path,
            f"{{{{{name}}}}} is sent to the model as written: the gateway fills placeholders "
            f"only in {where}",
            f"move it to {where}, or reword it",
            line=emit.doc.locations.text_line(path, offset),
            severity="warning",
            rule=PLACEHOLDER_TEXT,
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
    for f in ("systemInstruction", "userTemplate"):
        _injection(emit, ("spec", f), spec.get(f))
    _not_substituted(
        emit, ("spec", "systemInstruction"), spec.get("systemInstruction"), "userTemplate"
    )
    system, user = _s(spec.get("systemInstruction")), _s(spec.get("userTemplate"))
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
                rule=TOKEN_BUDGET,
            )


def _check_version(doc: Document, emit: _Emit) -> None:
    spec = doc.spec
    template, version = _s(spec.get("template")), _s(spec.get("version"))
    if template and version and doc.name and doc.name != f"{template}@{version}":
        emit(
            ("metadata", "name"),
            f"must be {visible(f'{template}@{version}', NAME)} (spec.template@spec.version)",
            f"set metadata.name to {visible(f'{template}@{version}', NAME)}",
            rule=IDENTITY_MATCH,
        )
    matrix = spec.get("variables")
    if isinstance(matrix, dict):
        lines = {k: doc.locations.key_line(("spec", "variables", k)) for k in matrix}
        _placeholders(emit, ("spec", "content"), spec.get("content"), matrix, lines, "variables")
        for k, v in matrix.items():  # a default value reaches the model like the content
            if isinstance(v, str) and v not in MATRIX_TYPES:
                _injection(emit, ("spec", "variables", k), v)
    content = spec.get("content")
    _injection(emit, ("spec", "content"), content)
    if isinstance(content, str):
        size = len(content.encode("utf-8"))
        if size > VERSION_MAX_BYTES:
            emit(
                ("spec", "content"),
                f"is {size} bytes of UTF-8, over the {VERSION_MAX_BYTES}-byte limit",
                "shorten the content",
                rule=CONTENT_SIZE,
            )
        n = tokens.count(content)
        if n > VERSION_MAX_TOKENS:
            emit(
                ("spec", "content"),
                f"is {n} tokens ({tokens.ENCODING}), over {VERSION_MAX_TOKENS}",
                "shorten the content",
                rule=CONTENT_TOKENS,
            )
        est = tokens.server_estimate(content)
        if est > VERSION_MAX_TOKENS:
            emit(
                ("spec", "content"),
                f"is {est:.0f} tokens by the gateway's estimate "
                f"(characters / 4), over {VERSION_MAX_TOKENS}",
                "shorten the content",
                rule=CONTENT_TOKENS,
            )
    ab = spec.get("abTest")
    if isinstance(ab, dict) and ab.get("enabled") is True:
        for f in ("trafficPercent", "variantId"):
            if f not in ab:
                emit(
                    ("spec", "abTest"),
                    f"an enabled A/B test needs `{f}`",
                    f"add spec.abTest.{f}",
                    rule=AB_TEST,
                )


def _check_prompt(doc: Document, emit: _Emit) -> None:
    spec = doc.spec
    _injection(emit, ("spec", "systemPrompt"), spec.get("systemPrompt"))
    _not_substituted(
        emit, ("spec", "systemPrompt"), spec.get("systemPrompt"), "a template's userTemplate"
    )
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
            f"the primary model {shown(model)} is also listed as a fallback",
            "remove it from fallbackModels",
            rule=FALLBACK,
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
                rule=FEW_SHOT,
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
                    rule=FEW_SHOT,
                )
    text = rendered.text
    if len(text) > PROMPT_MAX_CHARS:
        emit(
            ("spec", "systemPrompt"),
            f"renders to {len(text)} characters, over the {PROMPT_MAX_CHARS}-character limit",
            "shorten the system prompt or the few-shot examples",
            rule=PROMPT_LENGTH,
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
                rule=PROMPT_TOKENS,
            )
        est = tokens.server_estimate(text)
        if est > limit:
            emit(
                where,
                f"the rendered system prompt is {est:.0f} tokens by the gateway's estimate "
                f"(characters / 4), over safetyGuardrails.maxTokens {limit}",
                "raise safetyGuardrails.maxTokens or shorten the system prompt",
                rule=PROMPT_TOKENS,
            )


def _check_split(doc: Document, emit: _Emit) -> None:
    spec = doc.spec
    prompt = _s(spec.get("prompt"))
    if prompt and doc.name and doc.name != prompt:
        emit(
            ("metadata", "name"),
            f"must equal spec.prompt ({visible(prompt, NAME)})",
            f"set metadata.name to {visible(prompt, NAME)}",
            rule=IDENTITY_MATCH,
        )
    versions, default = spec.get("versions"), spec.get("defaultVersion")
    if versions is None and default is None:
        emit(
            ("spec",),
            "needs either `versions` (weighted) or `defaultVersion` (all traffic)",
            "add spec.versions or spec.defaultVersion",
            rule=SPLIT_FORM,
        )
    elif versions is not None and default is not None:
        emit(
            ("spec", "defaultVersion"),
            "`versions` and `defaultVersion` cannot both be set",
            "keep one of them",
            rule=SPLIT_FORM,
        )
    if default is not None and "strategy" in spec:
        emit(
            ("spec", "strategy"),
            "strategy applies only to weighted `versions`",
            "remove strategy, or list versions with weights",
            rule=SPLIT_FORM,
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
                        f"version {shown(v)} is listed twice (also entry {seen[v] + 1})",
                        "list each version once, with its total weight",
                        rule=SPLIT_FORM,
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
                rule=SPLIT_WEIGHTS,
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
                rule=URL,
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
                    f"{doc.kind} {visible(key, NAME)} is defined twice: here and at "
                    f"{other.file}:{other.line}",
                    "keep one definition",
                    DUPLICATE,
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
                REFERENCE,
            )
        )

    for doc in docs:
        spec = doc.spec
        if doc.kind in (Kind.PROMPT_VERSION.value, Kind.PROMPT.value):
            t = _s(spec.get("template"))
            if t and t not in templates:
                warn(doc, ("spec", "template"), f"PromptTemplate {visible(t, NAME)}")
        elif doc.kind == Kind.TRAFFIC_SPLIT.value:
            p = _s(spec.get("prompt"))
            if not p:
                continue
            prompt = prompts.get(p)
            if prompt is None:
                warn(doc, ("spec", "prompt"), f"Prompt {visible(p, NAME)}")
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
                        warn(doc, path, f"PromptVersion {visible(f'{template}@{v}', NAME)}")
                elif vdoc.spec.get("rollbackDirective") is True:
                    problems.append(
                        Problem(
                            doc.file,
                            doc.line_of(path),
                            "error",
                            doc.kind,
                            doc.name,
                            format_path(path),
                            f"routes traffic to {visible(f'{template}@{v}', NAME)}, which is "
                            f"withdrawn (rollbackDirective: true at {vdoc.file}:"
                            f"{vdoc.line_of(('spec', 'rollbackDirective'))})",
                            "move its traffic to another version first",
                            SPLIT_WITHDRAWN,
                        )
                    )
    return problems
