"""SARIF 2.1.0 for GitHub code scanning: the problems of a run as one SARIF log.

``log`` maps any list of ``Problem`` (load, schema, semantic rules, org policies) to one run of
the tool ``llmgw``; nothing in it knows which check found a problem, so a new rule (a policy's
``policy/RULE_ID``) needs no change here. What GitHub needs, and how it is met:

- **One reportingDescriptor per rule** (``Problem.rule``; a problem without one gets the
  stable id ``unclassified``), sorted by id, each with the short and full description and help
  text GitHub shows at the top of an alert (``describe``), a default level and a ``tags``
  property naming its family (``load``, ``schema``, ``semantic``, ``policy``). A result names
  its rule by ``ruleId`` and ``ruleIndex``.
- **A location for every result**, with ``region.startLine`` (GitHub rejects a result without
  one): a problem about a whole file or folder (line 0) points at line 1.
- **URIs relative to the repository root**: llmgw shows a file relative to the working
  directory (the checkout, in CI), so that path, percent-encoded (spaces, ``#``, ``%``, ``:``,
  non-ASCII as UTF-8), is the ``uri`` against ``%SRCROOT%``. ``originalUriBaseIds`` describes
  ``%SRCROOT%`` without giving its absolute URI (SARIF §3.14.14 allows leaving it out): the
  output is the same on every machine and names no runner's home folder. A file outside the
  working directory keeps the path it was given: an absolute one becomes a ``file://`` URI
  (which GitHub relativises against the checkout when it lies inside it), a relative one
  (``../x.yaml``) stays relative to the root, ``..`` and all.
- **Fingerprints that survive edits**: ``partialFingerprints`` hashes the rule, the file, the
  object (kind and name) and the field path, never the line or the message (both move when
  the file is edited above the problem, and messages quote values), so an alert is matched,
  not closed and reopened, across runs. Problems that agree on all of these are told apart by
  their order in the run.

Pure string building: no I/O, no printing, no click (``views.base``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from reconciler import __version__, rules, textrules
from reconciler.kinds import common
from reconciler.loader import LOAD_RULE
from reconciler.model import Problem
from reconciler.policy.pack import DESCRIPTIONS as POLICY_DESCRIPTIONS
from reconciler.policy.pack import RULE_PREFIX
from reconciler.text import NAME, visible
from reconciler.views.base import json_dumps

SARIF_VERSION = "2.1.0"
# the id of the OASIS schema (errata 01) that the tests validate against (tests/data/)
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
TOOL = "llmgw"
INFORMATION_URI = "https://github.com/your-org/llmgw"  # the repository the README installs from
SRCROOT = "%SRCROOT%"
FINGERPRINT = "llmgwProblem/v1"  # the partialFingerprints key: a new hash is a new /vN
UNCLASSIFIED = "unclassified"  # the rule id of a problem that names none
POLICY = RULE_PREFIX  # org policy rules are reported as policy/RULE_ID
SCHEMA = "schema."  # the JSON Schema keyword refused: schema.required, schema.pattern ...

LEVELS = {"error": "error", "warning": "warning"}  # anything else is a note
_RANK = {"error": 0, "warning": 1, "note": 2}

# What each rule of llmgw's own checks asks for: (short description, full description).
# A rule missing here still gets a description (``describe``), only a plainer one.
RULES: dict[str, tuple[str, str]] = {
    LOAD_RULE: (
        "Manifest files are plain YAML that llmgw can read",
        "Each manifest file is read as plain YAML 1.2: UTF-8, valid syntax, no duplicate keys, "
        "no values that YAML 1.1 tools would read differently, within llmgw's size and "
        "nesting limits.",
    ),
    "schema.kind": (
        "Every document names a known kind",
        "A document's `kind` is one of the kinds llmgw manages.",
    ),
    "schema.disagreement": (
        "llmgw's two schema checkers agree",
        "jsonschema-rs and jsonschema judge the document alike; when they do not, llmgw treats "
        "it as invalid and asks for a report.",
    ),
    rules.DUPLICATE: (
        "Each object is defined once",
        "No two documents define the same kind and name.",
    ),
    rules.LABEL_RESERVED: (
        "Labels llmgw reserves are left to it",
        "The labels llmgw sets on live objects for itself are not written in manifests.",
    ),
    rules.ANNOTATION: (
        "llmgw's annotations have valid values",
        "Annotations that steer llmgw (such as llmgw/allow-replace) hold the values it reads.",
    ),
    textrules.IDENTITY: (
        "Names use only characters the gateway accepts",
        "A name becomes part of request paths: no control, format, space or path characters.",
    ),
    common.IDENTITY_MATCH: (
        "An object's name matches the identity its spec gives it",
        "metadata.name is the identity the spec's fields spell, so the two cannot disagree.",
    ),
    textrules.INJECTION: (
        "Texts for the model hold no prompt-injection pattern",
        "The gateway blocks texts that contain its prompt-injection patterns; llmgw finds "
        "them before they are sent.",
    ),
    textrules.PLACEHOLDER_UNDECLARED: (
        "Every placeholder is a declared variable",
        "Each {{name}} in a text is declared in spec.variables.",
    ),
    textrules.PLACEHOLDER_UNUSED: (
        "Every declared variable is used",
        "Each variable of spec.variables appears as a placeholder in the text.",
    ),
    textrules.PLACEHOLDER_LOOKALIKE: (
        "Text that looks like a placeholder is one",
        "Braces the gateway does not read as a placeholder (spaces inside, a wrong name) are "
        "sent to the model as written.",
    ),
    common.PLACEHOLDER_TEXT: (
        "Placeholders stand where the gateway fills them",
        "A placeholder in a text the gateway does not fill is sent to the model as written.",
    ),
    textrules.CONTENT_SIZE: (
        "Version content fits the gateway's size limit",
        "A version's content is within the gateway's limit in bytes of UTF-8.",
    ),
    textrules.CONTENT_TOKENS: (
        "Version content fits the gateway's token limit",
        "A version's content is within the gateway's token limit, by its estimate.",
    ),
    textrules.PROMPT_LENGTH: (
        "The rendered system prompt fits the gateway's length limit",
        "The system prompt with its few-shot examples is within the gateway's character limit.",
    ),
    textrules.PROMPT_TOKENS: (
        "The rendered system prompt fits its token limit",
        "The rendered system prompt is within safetyGuardrails.maxTokens.",
    ),
    common.TOKEN_BUDGET: (
        "Template texts fit their token budget",
        "A template's texts are within its maxTokens.",
    ),
    common.FEW_SHOT: (
        "Few-shot examples fit the context window",
        "At least the newest few-shot example fits in contextWindowLimit.",
    ),
    textrules.SPLIT_WEIGHTS: (
        "A traffic split's weights add up to 1.0",
        "The weights of a split's versions sum to 1.0, within the gateway's tolerance.",
    ),
    common.SPLIT_FORM: (
        "A traffic split is written in one form",
        "A split either lists weighted versions or names a default version, not both.",
    ),
    common.SPLIT_WITHDRAWN: (
        "No traffic goes to a withdrawn version",
        "A split routes no traffic to a version that is withdrawn.",
    ),
    common.ROLLOUT: (
        "A rollout's steps and end state are consistent",
        "A rollout's steps rise toward an end state that moves traffic to one new version.",
    ),
    common.URL: (
        "URLs are absolute https URLs",
        "URLs are absolute and use https; plain http is allowed only to loopback.",
    ),
    common.AB_TEST: (
        "An enabled A/B test is complete",
        "An enabled A/B test names everything the gateway needs to run it.",
    ),
    common.FALLBACK: (
        "Fallback models differ from the primary model",
        "The primary model is not listed again among the fallback models.",
    ),
    common.REFERENCE: (
        "Referenced objects are in the manifests",
        "An object another one refers to is defined in the manifests (plan checks the org).",
    ),
}
RULES.update(POLICY_DESCRIPTIONS)


def rule_id(p: Problem) -> str:
    return p.rule or UNCLASSIFIED


def family(rule: str) -> str:
    """The tag of a rule's family: ``load``, ``schema``, ``policy`` or ``semantic``."""
    if rule == LOAD_RULE:
        return "load"
    if rule.startswith(SCHEMA):
        return "schema"
    if rule.startswith(POLICY):
        return "policy"
    return "semantic"


def describe(rule: str) -> tuple[str, str]:
    """A rule's short and full description: its own, or one built from its id."""
    if rule in RULES:
        return RULES[rule]
    if rule.startswith(POLICY):
        name = rule.removeprefix(POLICY)
        return (
            f"Org policy {name}",
            f"The org policy rule {name}, from the repository's policy packs; each result "
            "says what the rule requires.",
        )
    if rule.startswith(SCHEMA):
        keyword = rule.removeprefix(SCHEMA)
        return (
            f"Documents match their kind's JSON Schema ({keyword})",
            f"The document breaks the `{keyword}` keyword of its kind's JSON Schema.",
        )
    if rule == UNCLASSIFIED:
        return ("A problem llmgw found", "A problem of a check that names no rule.")
    return (f"llmgw rule {rule}", f"The llmgw check {rule}; each result says what to change.")


def level(p: Problem) -> str:
    return LEVELS.get(p.severity, "note")


def uri(file: str) -> dict[str, str]:
    """The artifactLocation of a file as llmgw shows it (see the module docstring)."""
    if file.startswith("/"):
        return {"uri": "file://" + quote(file, safe="/")}
    return {"uri": quote(file, safe="/") or ".", "uriBaseId": SRCROOT}


def text(p: Problem) -> str:
    """``Kind/name: path: message (fix)``, invisible characters escaped as in text output, and
    no ``](`` left that would make a value read as an embedded link (SARIF §3.11.6)."""
    parts = [p.subject] if p.subject else []
    if p.path:
        parts.append(visible(p.path, NAME * 2))
    parts.append(visible(p.message) + (f" ({visible(p.fix)})" if p.fix else ""))
    return ": ".join(parts).replace("](", "\\](")


def fingerprint(p: Problem, occurrence: int) -> str:
    """A hash of what a problem is about, not where it is: rule, file, kind, name, field path,
    and which of the run's problems agreeing on all of those it is (0, 1, ...)."""
    key = "\0".join((rule_id(p), p.file, p.kind, p.name, p.path, str(occurrence)))
    return hashlib.sha256(key.encode("utf-8", "backslashreplace")).hexdigest()[:32]


def _descriptor(rule: str, default: str) -> dict[str, Any]:
    short, full = describe(rule)
    return {
        "id": rule,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": f"{full} Each result says where and what would fix it."},
        "defaultConfiguration": {"level": default},
        "properties": {"tags": [family(rule)]},
    }


def log(problems: Sequence[Problem]) -> dict[str, Any]:
    """The SARIF log of ``problems``: one run, its rules, one result per problem in order."""
    defaults: dict[str, str] = {}
    for p in problems:  # a rule's default level: the most severe of its results in this run
        rule, lvl = rule_id(p), level(p)
        if rule not in defaults or _RANK[lvl] < _RANK[defaults[rule]]:
            defaults[rule] = lvl
    order = sorted(defaults)
    index = {rule: i for i, rule in enumerate(order)}
    seen: Counter[tuple[str, ...]] = Counter()
    results = []
    for p in problems:
        rule = rule_id(p)
        key = (rule, p.file, p.kind, p.name, p.path)
        occurrence = seen[key]
        seen[key] += 1
        results.append(
            {
                "ruleId": rule,
                "ruleIndex": index[rule],
                "level": level(p),
                "message": {"text": text(p)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": uri(p.file),
                            "region": {"startLine": max(p.line, 1)},
                        }
                    }
                ],
                "partialFingerprints": {FINGERPRINT: fingerprint(p, occurrence)},
                "properties": {"kind": p.kind, "name": p.name, "path": p.path},
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL,
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_descriptor(rule, defaults[rule]) for rule in order],
                    }
                },
                "originalUriBaseIds": {
                    SRCROOT: {
                        "description": {
                            "text": "The working directory llmgw ran in: the repository root."
                        }
                    }
                },
                "invocations": [{"executionSuccessful": True}],
                "results": results,
            }
        ],
    }


def render(problems: Sequence[Problem]) -> str:
    return json_dumps(log(problems), indent=2)
