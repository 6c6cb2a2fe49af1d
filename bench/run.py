"""`make bench`: run every benchmark script in bench/ and write bench/results.md.

Each `bench_*.py` module exposes `main() -> dict | list[dict]` (result rows). Figures are wall
time on this machine: compare rows from the same run, not across machines.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # so a bench's worker processes can find its functions
    spec.loader.exec_module(module)
    return module


def main() -> int:
    only = set(sys.argv[1:])
    rows: list[dict[str, object]] = []
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        print(f"running {path.name} ...", flush=True)
        result = load(path).main()
        for row in result if isinstance(result, list) else [result]:
            row = {"script": path.name, **row}
            print(json.dumps(row))
            rows.append(row)
    lines = [
        "# Benchmark results",
        "",
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.machine()}, Python {platform.python_version()}). Written by `make bench`.",
        "",
    ]
    for row in rows:
        lines.append(f"## {row.get('benchmark', row['script'])}")
        lines.append("")
        lines.append("| metric | value |")
        lines.append("|---|---|")
        for k, v in row.items():
            if k not in ("benchmark",):
                lines.append(f"| {k} | {v} |")
        lines.append("")
    (HERE / "results.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
