"""What a change touched: the manifest documents that differ between a git commit and the
working tree (``plan --changed-since REF``).

Git names the files under the manifest paths that differ from REF (tracked ones, and every
untracked one: llmgw reads a manifest whether git ignores it or not); each such file is read at
REF (``git show``, bounded like any manifest read) and now, and their documents are compared by
identity (kind and name): a document added, or whose content differs, is **changed**; one that
REF had and the working tree has nowhere is **removed** (read from REF). A document moved to
another file with the same content is neither.

The only module that runs git for planning (``audit.git_commit`` notes the commit of a run).
Every git call is bounded in time and output; any failure is a ``ConfigError`` saying what to do
(not a git checkout, REF not a commit, git missing). It decides nothing about the org.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reconciler import loader, rules
from reconciler.errors import ConfigError
from reconciler.model import Document

GIT_TIMEOUT = 30.0  # seconds per git call
MAX_OUTPUT = 64 * 1024 * 1024  # bytes of one git call's output (file names, one file's content)
MAX_REF = 256  # characters of REF as given


@dataclass(frozen=True)
class ChangeSet:
    """The documents a change touched, by (kind, identity)."""

    ref: str  # as given
    commit: str  # what it names
    changed: frozenset[tuple[str, str]]  # added or edited, in the working tree
    removed: tuple[Document, ...] = ()  # at REF, nowhere in the working tree
    files: tuple[str, ...] = field(default=())  # the files git named (relative to the top)


def _git(args: Sequence[str], cwd: str, what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise ConfigError(
            "--changed-since needs git, and git is not installed", "install git, or plan in full"
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"git took more than {GIT_TIMEOUT:g} s to {what}",
            "plan in full (without --changed-since)",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot run git to {what}: {exc.strerror}", "plan in full") from None
    if len(done.stdout) > MAX_OUTPUT:
        raise ConfigError(
            f"git's answer to {what} is over {MAX_OUTPUT // (1024 * 1024)} MiB",
            "plan in full (without --changed-since)",
        )
    return done


def _toplevel(cwd: str) -> str:
    done = _git(["rev-parse", "--show-toplevel"], cwd, "find the checkout")
    top = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not top:
        raise ConfigError(
            f"--changed-since needs the manifests in a git checkout, and {cwd} is not in one",
            "run it inside the repository that holds the manifests, or plan in full",
        )
    return os.path.realpath(top)


def _commit(ref: str, top: str) -> str:
    if not ref or len(ref) > MAX_REF or ref.startswith("-") or any(c in ref for c in "\0\n\r"):
        raise ConfigError(
            f"--changed-since {ref!r} is not a git revision",
            "name a commit: a branch such as origin/main, a tag, or a commit hash",
        )
    done = _git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        top,
        f"read {ref}",
    )
    sha = done.stdout.decode("ascii", "replace").strip()
    if done.returncode != 0 or len(sha) < 40:
        raise ConfigError(
            f"--changed-since {ref!r} names no commit in this repository",
            "fetch it first (CI checkouts are often shallow: `git fetch origin main`), or name "
            "another commit",
        )
    return sha


def _names(out: bytes) -> list[str]:
    return [n.decode("utf-8", "surrogateescape") for n in out.split(b"\0") if n]


def _relative(paths: Iterable[str], top: str, cwd: str) -> list[str]:
    out = []
    for p in paths:
        full = os.path.realpath(os.path.join(cwd, p))
        if full != top and not full.startswith(top + os.sep):
            raise ConfigError(
                f"{p} is outside the git checkout at {top}",
                "pass manifest paths inside the repository, or plan in full",
            )
        out.append(os.path.relpath(full, top))
    return out


def changed_documents(
    paths: Sequence[str], ref: str, documents: Sequence[Document], cwd: str | None = None
) -> ChangeSet:
    """The change between ``ref`` and the working tree under ``paths``; ``documents`` are the
    working tree's (already loaded and validated)."""
    cwd = os.path.realpath(cwd or os.getcwd())
    first = os.path.realpath(os.path.join(cwd, paths[0])) if paths else cwd
    top = _toplevel(first if os.path.isdir(first) else os.path.dirname(first))
    sha = _commit(ref, top)
    scope = _relative(paths, top, cwd)
    diff = _git(
        ["diff", "--name-status", "-z", "--no-renames", sha, "--", *scope],
        top,
        f"diff against {ref}",
    )
    if diff.returncode != 0:
        raise ConfigError(
            f"git could not diff the manifests against {ref}: "
            + diff.stderr.decode("utf-8", "replace").strip()[:300],
            "plan in full (without --changed-since)",
        )
    untracked = _git(
        ["ls-files", "--others", "-z", "--", *scope],
        top,
        "list new files",  # ignored ones too
    )
    fields = _names(diff.stdout)  # STATUS, path, STATUS, path, ...
    status = dict(zip(fields[1::2], fields[0::2], strict=True))
    names = sorted(
        n
        for n in set(status) | set(_names(untracked.stdout))
        if loader.is_manifest_name(os.path.basename(n))
    )
    at_ref = [n for n in names if status.get(n, "A") != "A"]  # untracked or added: none at REF
    by_file: dict[str, list[Document]] = {}
    everywhere: dict[tuple[str, str], Document] = {}
    for doc in documents:
        rel = os.path.relpath(os.path.realpath(os.path.join(cwd, doc.file)), top)
        by_file.setdefault(rel, []).append(doc)
        key = _key(doc)
        if key is not None:
            everywhere[key] = doc
    # what the changed files held at REF, all together: a document may move between them
    before: dict[tuple[str, str], Document] = {}
    for name in at_ref:
        for doc in _at(sha, name, top, ref):
            key = _key(doc)
            if key is not None:
                before.setdefault(key, doc)
    changed: set[tuple[str, str]] = set()
    for name in names:
        for doc in by_file.get(name, []):
            key = _key(doc)
            if key is not None and (key not in before or before[key].body != doc.body):
                changed.add(key)
    removed = []
    for key, doc in before.items():
        now = everywhere.get(key)
        if now is None:
            removed.append(doc)
        elif now.body != doc.body:
            changed.add(key)
    return ChangeSet(ref, sha, frozenset(changed), tuple(removed), tuple(names))


def _key(doc: Document) -> tuple[str, str] | None:
    ident = rules.identity(doc)
    return (doc.kind, ident) if doc.kind and ident else None


def _at(sha: str, name: str, top: str, ref: str) -> list[Document]:
    """The documents of ``name`` at ``sha`` (a file git says REF has)."""
    done = _git(["show", f"{sha}:{name}"], top, f"read {name} at {ref}")
    if done.returncode != 0 or len(done.stdout) > loader.MAX_FILE_BYTES:
        raise ConfigError(
            f"cannot read {name} as it was at {ref}"
            + (" (over the size limit of a manifest)" if done.returncode == 0 else ""),
            "plan in full (without --changed-since)",
        )
    docs, _problems = loader.load_bytes(done.stdout, f"{ref}:{name}")
    return docs  # a document REF could not parse counts as absent there: its successor changed
