"""Run metrics in Prometheus text format, for node_exporter's textfile collector.

Pure formatting plus one atomic file write: no HTTP. ``apply_metrics`` and ``drift_metrics``
build the exposition text of one run; ``write_textfile`` replaces the file atomically (the
collector must never read half a file), and ``check_writable`` is called before a run sends
anything, so a full disk is found before the first write, not after the last. Label values and
help texts go through ``reconciler.redact``. The last-success timestamp survives a failed run: it
is carried over from the previous file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler import files
from reconciler.redact import redact

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass
class Family:
    name: str
    help: str
    type: str = "gauge"
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((labels, value))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if v != v:
        return "NaN"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def prometheus_text(families: Iterable[Family]) -> str:
    out: list[str] = []
    for fam in families:
        if not _NAME.fullmatch(fam.name):
            raise ValueError(f"invalid metric name {fam.name!r}")
        out.append(f"# HELP {fam.name} {redact(fam.help).replace(chr(10), ' ')}")
        out.append(f"# TYPE {fam.name} {fam.type}")
        for labels, value in fam.samples:
            for k in labels:
                if not _LABEL.fullmatch(k):
                    raise ValueError(f"invalid label name {k!r}")
            lab = ",".join(f'{k}="{_escape(redact(str(v)))}"' for k, v in sorted(labels.items()))
            out.append(
                f"{fam.name}{{{lab}}} {_number(value)}" if lab else f"{fam.name} {_number(value)}"
            )
    return "\n".join(out) + "\n"


def parse_textfile(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of an exposition text: (name, sorted labels) -> value. Minimal, for carry-over."""
    rx = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
    lab = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line.strip())
        if not m:
            continue
        labels = tuple(
            sorted(
                (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                for k, v in lab.findall(m.group(2) or "")
            )
        )
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            continue
    return out


def check_writable(path: str) -> None:
    """FileError unless the metrics file can be written (before a run sends anything)."""
    files.check_writable(path)


def write_textfile(path: str, text: str) -> None:
    """Replace the file atomically, world-readable for the collector; FileError when it
    cannot."""
    files.write_atomic(path, text, mode=0o644)


def _last_success(
    command: str, previous: str | None, finished_at: float, success: bool
) -> float | None:
    if success:
        return finished_at
    if previous:
        key = ("llmgw_last_success_timestamp_seconds", (("command", command),))
        return parse_textfile(previous).get(key)
    return None


def _run_families(
    command: str, duration_s: float, finished_at: float, success: bool, previous: str | None
) -> list[Family]:
    fams = [
        Family("llmgw_run_duration_seconds", "Duration of the last run.").add(
            round(duration_s, 3), command=command
        ),
        Family("llmgw_run_success", "1 if the last run succeeded, else 0.").add(
            1 if success else 0, command=command
        ),
        Family("llmgw_last_run_timestamp_seconds", "When the last run finished (unix time).").add(
            round(finished_at, 3), command=command
        ),
    ]
    last = _last_success(command, previous, finished_at, success)
    if last is not None:
        fams.append(
            Family(
                "llmgw_last_success_timestamp_seconds", "When a run last succeeded (unix time)."
            ).add(round(last, 3), command=command)
        )
    return fams


def apply_metrics(
    results: Iterable[tuple[str, str]],
    endpoint_stats: Sequence[Any],
    duration_s: float,
    finished_at: float,
    success: bool,
    *,
    previous: str | None = None,
) -> str:
    """``results``: (kind, outcome) per planned operation; ``endpoint_stats``: rows with method,
    endpoint, count, errors, retries, latency_p50_ms, latency_p95_ms, latency_total_ms."""
    ops = Family("llmgw_apply_operations", "Planned operations of the last apply, by outcome.")
    counts: dict[tuple[str, str], int] = {}
    for kind, outcome in results:
        counts[(kind, outcome)] = counts.get((kind, outcome), 0) + 1
    for (kind, outcome), n in sorted(counts.items()):
        ops.add(n, kind=kind, outcome=outcome)
    req = Family("llmgw_api_requests_total", "API requests of the last run.", "counter")
    err = Family(
        "llmgw_api_request_errors_total", "API answers >= 400 or failed requests.", "counter"
    )
    ret = Family("llmgw_api_request_retries_total", "Retried API requests.", "counter")
    lat = Family("llmgw_api_request_latency_seconds", "API latency quantiles of the last run.")
    for s in endpoint_stats:
        labels = {"method": s.method, "endpoint": s.endpoint}
        req.add(s.count, **labels)
        err.add(s.errors, **labels)
        ret.add(s.retries, **labels)
        lat.add(round(s.latency_p50_ms / 1000, 6), quantile="0.5", **labels)
        lat.add(round(s.latency_p95_ms / 1000, 6), quantile="0.95", **labels)
    return prometheus_text(
        [
            ops,
            req,
            err,
            ret,
            lat,
            *_run_families("apply", duration_s, finished_at, success, previous),
        ]
    )


def drift_metrics(
    counts_by_kind_and_state: Mapping[tuple[str, str], int],
    checked_by_kind: Mapping[str, int],
    duration_s: float,
    finished_at: float,
    success: bool,
    *,
    previous: str | None = None,
) -> str:
    checked = Family("llmgw_drift_objects_checked", "Objects compared, by kind.")
    for kind, n in sorted(checked_by_kind.items()):
        checked.add(n, kind=kind)
    states = Family(
        "llmgw_drift_objects", "Objects by drift state (modified, missing, orphaned, unmanaged)."
    )
    for (kind, state), n in sorted(counts_by_kind_and_state.items()):
        states.add(n, kind=kind, state=state)
    drifted = sum(n for (_, s), n in counts_by_kind_and_state.items() if s != "unmanaged")
    total = Family("llmgw_drift_drifted_objects", "Objects drifted (unmanaged excluded).").add(
        drifted
    )
    fams = [checked, states, total] if success else []
    return prometheus_text(
        fams + _run_families("drift", duration_s, finished_at, success, previous)
    )
