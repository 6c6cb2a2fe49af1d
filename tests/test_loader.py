"""The loader: discovery rules, reading, bounds, locations, and its refusals beyond the corpus.

Covers, for the file system: recursive discovery of *.yaml/*.yml in any case, skipping dot-files
and dot-folders; missing paths, empty folders and an empty path; symbolic links followed inside
the folders given (folders and files, listed once under their own path), reported when they
point outside (never read), dangle, loop or lead to an ancestor; explicit file links followed;
unreadable folders; the bound on the number of files; only regular files read (a FIFO refused
without blocking, /dev/zero and a socket refused); never more than the size bound plus one byte
read, whatever the file's size claims or however it grows; the bound over a run; the ignore
file's reader (same refusals, dates allowed).

For the loader API: tags on scalars, sequences, mappings and the document refused (`!!str` on a
scalar allowed); YAML 1.1 readings of values and keys reported with the advice to quote them,
recorded in `Locations.coerced`, with `Locations.raw` kept; dates (and the ignore file's
exception); NaN and infinities; numbers too long to parse; null documents against empty ones;
forbidden characters at their own line and column; U+2028, U+2029 and NEL neither shifting
lines nor changing values; CRLF files; a lone CR refused; documents before a syntax error kept;
line numbers of values, keys and block-scalar text; problems naming their document; and that
nothing in the loader raises for bad bytes.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler import loader
from reconciler.loader import (
    discover,
    load_bytes,
    load_data_file,
    load_paths,
    load_text,
    parse_documents,
    read_file,
)
from reconciler.model import Problem

TAG_FIX = "remove the tag; manifests use plain YAML values"


@contextmanager
def no_hang(seconds: int = 20) -> Iterator[None]:
    """Fail instead of hanging the suite if the code under test blocks (a FIFO opened without
    O_NONBLOCK waits forever). Not a timing assertion: it only fires on a hang."""

    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError("the loader blocked")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def messages(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def one(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, messages(problems)
    return problems[0]


def names(files: list[str], root: Path) -> list[str]:
    return [os.path.relpath(f, root) for f in files]


# --- discovery -----------------------------------------------------------------------------


def test_discovery_skips_dot_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / ".github").mkdir()
    (tmp_path / "a" / "x.yaml").write_text("{}")
    (tmp_path / "a" / "y.yml").write_text("{}")
    (tmp_path / "a" / "z.txt").write_text("{}")
    (tmp_path / ".llmgw-ignore.yaml").write_text("{}")
    (tmp_path / ".github" / "w.yaml").write_text("{}")
    files, problems = discover([str(tmp_path)])
    assert [Path(f).name for f in files] == ["x.yaml", "y.yml"]
    assert problems == []


def test_suffixes_in_any_case(tmp_path: Path) -> None:
    for name in ["a.YAML", "b.Yml", "c.yAmL", "d.yaml.txt", "e.YAM"]:
        (tmp_path / name).write_text("{}")
    files, problems = discover([str(tmp_path)])
    assert names(files, tmp_path) == ["a.YAML", "b.Yml", "c.yAmL"]
    assert problems == []


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, problems = discover([str(tmp_path / "nope"), str(tmp_path / "empty")])
    assert sorted(p.message for p in problems) == [
        "no manifest files (*.yaml, *.yml) in this folder",
        "no such file or folder",
    ]


def test_empty_path_is_not_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("{}")  # the working directory: must not be read
    files, problems = discover([""])
    assert files == []
    assert one(problems).message == "an empty path"


def test_order_is_deterministic_and_files_before_links(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "b").mkdir(parents=True)
    (tree / "a").mkdir()
    (tree / ".shared").mkdir()
    for rel in ["z.yaml", "b/2.yaml", "b/1.yaml", "a/x.yaml", ".shared/s.yaml"]:
        (tree / rel).write_text("{}")
    (tree / "0-link").symlink_to(".shared")
    first, problems = discover([str(tree)])
    assert problems == []
    assert names(first, tree) == ["z.yaml", "a/x.yaml", "b/1.yaml", "b/2.yaml", "0-link/s.yaml"]
    assert discover([str(tree)])[0] == first


def test_symlinked_folder_inside_the_tree_is_followed(tmp_path: Path) -> None:
    (tmp_path / ".shared" / "deep").mkdir(parents=True)
    (tmp_path / ".shared" / "deep" / "s.yaml").write_text("kind: X\n")
    (tmp_path / "prod").symlink_to(".shared")
    files, problems = discover([str(tmp_path)])
    assert problems == []
    assert names(files, tmp_path) == ["prod/deep/s.yaml"]


def test_a_file_reached_through_links_is_listed_once_under_its_own_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.yaml").write_text("kind: X\n")
    (tmp_path / "alias").symlink_to("real")
    (tmp_path / "a-link.yaml").symlink_to("real/x.yaml")
    files, problems = discover([str(tmp_path)])
    assert problems == []
    assert names(files, tmp_path) == ["real/x.yaml"]
    assert len(load_paths([str(tmp_path)]).documents) == 1


def test_file_link_inside_the_tree_is_read(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.txt").write_text("kind: X\n")
    (tmp_path / "x.yaml").symlink_to("notes/x.txt")
    result = load_paths([str(tmp_path)])
    assert result.problems == [] and result.documents[0].body == {"kind": "X"}
    assert names(result.files, tmp_path) == ["x.yaml"]


def test_links_outside_the_folder_are_reported_and_never_read(tmp_path: Path) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    tree.mkdir()
    outside.mkdir()
    (outside / "s.yaml").write_text("kind: SECRET-CONTENT\n")
    (tree / "leak.yaml").symlink_to("../outside/s.yaml")
    (tree / "outdir").symlink_to(outside)
    (tree / "notes.md").symlink_to("../outside/s.yaml")  # not a manifest name: not llmgw's
    result = load_paths([str(tree)])
    assert result.documents == [] and result.files == []
    found = {Path(p.file).name: p for p in result.problems}
    assert set(found) == {"leak.yaml", "outdir"}
    for p in found.values():
        assert p.message == (
            f"is a symbolic link that points outside {tree}: "
            "llmgw reads only files inside the folders it is given"
        )
        assert "SECRET" not in str(p) and "outside/s.yaml" not in str(p)


def test_a_link_into_another_folder_given_is_inside(tmp_path: Path) -> None:
    (tmp_path / "prod").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "s.yaml").write_text("kind: X\n")
    (tmp_path / "prod" / "common").symlink_to("../shared")
    files, problems = discover([str(tmp_path / "prod"), str(tmp_path / "shared")])
    assert problems == []
    assert names(files, tmp_path) == ["shared/s.yaml"]


def test_link_loops_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.yaml").write_text("{}")
    (tmp_path / "a" / "b" / "up").symlink_to("..")
    (tmp_path / "a" / "self").symlink_to(".")
    (tmp_path / "ping").symlink_to("pong")
    (tmp_path / "pong").symlink_to("ping")
    files, problems = discover([str(tmp_path)])
    assert names(files, tmp_path) == ["a/b/x.yaml"]
    found = {os.path.relpath(p.file, tmp_path): p.message for p in problems}
    assert found == {
        "a/b/up": "is a symbolic link to a folder that contains it: following it would loop",
        "a/self": "is a symbolic link to a folder that contains it: following it would loop",
        "ping": "is a symbolic link that loops",
        "pong": "is a symbolic link that loops",
    }


def test_dangling_links_are_reported_when_they_could_be_manifests(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("{}")
    (tmp_path / "gone.yaml").symlink_to("missing.yaml")
    (tmp_path / "gone-folder").symlink_to("missing")
    (tmp_path / "README.md").symlink_to("missing.md")  # not a manifest: not llmgw's business
    files, problems = discover([str(tmp_path)])
    assert names(files, tmp_path) == ["x.yaml"]
    found = {os.path.relpath(p.file, tmp_path): p.message for p in problems}
    broken = "is a broken symbolic link: what it points to does not exist"
    assert found == {"gone.yaml": broken, "gone-folder": broken}


def test_explicit_file_links_are_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yaml").write_text("kind: X\n")
    (tmp_path / "link.yaml").symlink_to("elsewhere/x.yaml")
    (tmp_path / "broken.yaml").symlink_to("missing.yaml")
    result = load_paths([str(tmp_path / "link.yaml"), str(tmp_path / "broken.yaml")])
    assert [d.body for d in result.documents] == [{"kind": "X"}]
    assert one(result.problems).message.startswith("is a broken symbolic link")


def test_a_folder_given_as_a_link_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.yaml").write_text("{}")
    (tmp_path / "link").symlink_to("real")
    files, problems = discover([str(tmp_path / "link")])
    assert problems == [] and files == [str(tmp_path / "link" / "x.yaml")]


def test_nested_folders_given_are_not_empty(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yaml").write_text("{}")
    files, problems = discover([str(tmp_path), str(tmp_path / "sub")])
    assert problems == [] and names(files, tmp_path) == ["sub/x.yaml"]


def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the suite may run as root, which reads a chmod 000 folder anyway: refuse it at the OS call
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x.yaml").write_text("{}")
    (tmp_path / "y.yaml").write_text("{}")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, problems = discover([str(tmp_path)])
    assert names(files, tmp_path) == ["y.yaml"]
    p = one(problems)
    assert p.file == str(tmp_path / "locked")
    assert p.message == "cannot be read: Permission denied"


def test_number_of_files_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_FILES", 3)
    for i in range(5):
        (tmp_path / f"{i}.yaml").write_text("{}")
    files, problems = discover([str(tmp_path)])
    assert names(files, tmp_path) == ["0.yaml", "1.yaml", "2.yaml"]
    assert one(problems).message == "more than 3 manifest files: llmgw stopped looking here"


# --- reading -------------------------------------------------------------------------------


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    with no_hang():
        result = load_paths([str(tmp_path)])  # found by discovery
        explicit = load_paths([str(tmp_path / "pipe.yaml")])
        data = load_data_file(str(tmp_path / "pipe.yaml"))
    for problems in (result.problems, explicit.problems, data[2]):
        p = one(problems)
        assert p.message == "is a FIFO (named pipe), not a regular file"
        assert p.fix == "llmgw reads only regular files"


def test_dev_zero_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "zero.yaml").symlink_to("/dev/zero")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    with no_hang():
        in_tree = load_paths([str(tmp_path / "tree")])
        named = load_paths([str(tmp_path / "zero.yaml")])
        device = load_paths(["/dev/zero"])
    assert one(in_tree.problems).message.startswith("is a symbolic link that points outside")
    for result in (named, device):
        assert one(result.problems).message == "is a character device, not a regular file"


def test_socket_is_refused(tmp_path: Path) -> None:
    # the working directory is tmp_path: a relative name keeps within AF_UNIX's path limit
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("s.yaml")
        result = load_paths([str(tmp_path)])
    assert one(result.problems).message == "is a socket, not a regular file"


def test_size_claims_are_not_trusted() -> None:
    # /proc files are regular files whose size says 0: read to the end, and never past the bound
    assert os.stat("/proc/self/status").st_size == 0
    data, why, _ = read_file("/proc/self/status")
    assert data is not None and b"Name:" in data and why == ""
    data, why, fix = read_file("/proc/self/status", limit=16)
    assert data is None and why == "file is larger than 16 bytes"
    assert fix == "split it into several files"


def test_a_file_growing_while_read_cannot_pass_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grows.yaml"
    path.write_bytes(b"a: 1\n")
    real_read = os.read
    served: list[int] = []

    def read(fd: int, n: int) -> bytes:
        with path.open("ab") as writer:  # another process keeps appending
            writer.write(b"#" * 100_000)
        chunk = real_read(fd, n)
        served.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "read", read)
    data, why, _ = read_file(str(path), limit=250_000)
    assert data is None and why == "file is larger than 250,000 bytes"
    assert sum(served) == 250_001


def test_oversize_file_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" + b"#" * (loader.MAX_FILE_BYTES + 1))
    result = load_paths([str(big)])
    assert result.documents == []
    assert one(result.problems).message == "file is larger than 4 MiB"


def test_bytes_over_a_run_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_TOTAL_BYTES", 10)
    for name in ["a.yaml", "b.yaml", "c.yaml"]:
        (tmp_path / name).write_text("kind: X\n")  # 8 bytes each
    result = load_paths([str(tmp_path)])
    assert len(result.documents) == 2
    p = one(result.problems)
    assert Path(p.file).name == "c.yaml" and "llmgw stopped reading here" in p.message


def test_ignore_file_reads_dates_and_refuses_the_rest(tmp_path: Path) -> None:
    path = tmp_path / ".llmgw-ignore.yaml"
    path.write_text("ignore:\n  - expires: 2026-12-31\n    field: on\n")
    value, _, problems = load_data_file(str(path))
    assert value["ignore"][0]["expires"] == dt.date(2026, 12, 31)
    assert [p.line for p in problems] == [3]
    assert "YAML 1.1 reads `on` as the boolean true" in problems[0].message
    path.write_text("ignore:\n  - expires: 2026-02-30\n")
    value, _, problems = load_data_file(str(path))
    assert one(problems).message == "`2026-02-30` is not a valid date"


# --- tags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object:os.system x\n", "!!python/object:os.system"),
        ("a: !!python/object/apply:os.system [ls]\n", "!!python/object/apply:os.system"),
        ("a: !Ref other\n", "!Ref"),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ('a: !!int "5"\n', "!!int"),
        ("a: !!float 1\n", "!!float"),
        ("a: !!int 5\n", "!!int"),  # repeats the default: still written
        ("a: ! 5\n", "!"),  # YAML 1.2 reads the text "5", PyYAML the number
        ("a: &x !!bool true\n", "!!bool"),
        ("a: !!timestamp 2026-01-01\n", "!!timestamp"),
        ("a: !!null ''\n", "!!null"),
        ("a: !Ref {x: 1}\n", "!Ref"),  # a mapping
        ("a: !!set {x}\n", "!!set"),
        ("a: !!omap [b: 1]\n", "!!omap"),  # a sequence
        ("a: !seq\n  - 1\n", "!seq"),
        ("a: !!str\n  - 1\n", "!!str"),  # !!str makes only scalars strings
        ("%TAG !e! tag:example.com,2000:\n---\na: !e!thing x\n", "!e!thing"),
    ],
)
def test_tags_are_refused_on_every_node(text: str, tag: str) -> None:
    docs, problems = load_text(text, "f.yaml")
    p = one(problems)
    assert p.message == f"the YAML tag `{tag}` is not allowed"
    assert p.fix == TAG_FIX and p.path == "a"
    assert p.line == text.count("\n", 0, text.index("a:")) + 1
    assert docs[0].locations.coerced == {("a",)}


def test_tag_on_the_document() -> None:
    docs, problems = load_text("kind: X\n--- !Thing\nkind: Y\n--- !!python/none\n", "f.yaml")
    assert [(p.line, p.message) for p in problems] == [
        (2, "the document has the YAML tag `!Thing`"),
        (4, "the document has the YAML tag `!!python/none`"),
    ]
    assert [d.body for d in docs] == [{"kind": "X"}, {"kind": "Y"}]  # still checked further


def test_tag_on_a_key() -> None:
    _, problems = load_text("!Ref a: 1\n!!str b: 2\n", "f.yaml")
    assert one(problems).message == "the YAML tag `!Ref` is not allowed"


def test_str_tag_on_a_scalar_and_default_collection_tags_pass() -> None:
    text = "a: !!str 5\nb: !!str yes\nc: !!map {x: 1}\nd: !!seq [1]\ne: ! {y: 2}\n"
    docs, problems = load_text(text, "f.yaml")
    assert problems == []
    assert docs[0].body == {"a": "5", "b": "yes", "c": {"x": 1}, "d": [1], "e": {"y": 2}}


# --- YAML 1.1 readings ---------------------------------------------------------------------

VALUE_READINGS = [
    ("yes", True, "YAML 1.1 reads `yes` as the boolean true", 'write true, or quote it: "yes"'),
    ("No", False, "YAML 1.1 reads `No` as the boolean false", 'write false, or quote it: "No"'),
    ("ON", True, "YAML 1.1 reads `ON` as the boolean true", 'write true, or quote it: "ON"'),
    ("off", False, "YAML 1.1 reads `off` as the boolean false", 'write false, or quote it: "off"'),
    (
        "0512",
        330,
        "YAML 1.1 reads `0512` as the octal number 330",
        'write 330, or quote it ("0512") if you mean the text',
    ),
    ("-012", -10, "YAML 1.1 reads `-012` as the octal number -10", "write -10"),
    ("0b101", 5, "YAML 1.1 reads `0b101` as the binary number 5", "write 5"),
    ("1:20", 80, "YAML 1.1 reads `1:20` as the base-60 number 80", "write 80"),
    ("1_000", 1000, "YAML 1.1 reads `1_000` as the number 1000", "write 1000"),
    ("+5", 5, "YAML 1.1 reads `+5` as the number 5", "write 5"),
    ("0x_10", 16, "YAML 1.1 reads `0x_10` as the number 16", "write 16"),
    ("1_0.5", 10.5, "YAML 1.1 reads `1_0.5` as the number 10.5", "write 10.5"),
    ("1:20.5", 80.5, "YAML 1.1 reads `1:20.5` as the base-60 number 80.5", "write 80.5"),
    ("+0.5", 0.5, "YAML 1.1 reads `+0.5` as the number 0.5", "write 0.5"),
    ("2026-12-31", "2026-12-31", "YAML 1.1 reads `2026-12-31` as a date", "quote it: "),
    ("2026-02-30", "2026-02-30", "YAML 1.1 reads `2026-02-30` as a date", "quote it: "),
    (
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14t21:59:43.10-05:00",
        "YAML 1.1 reads `2001-12-14t21:59:43.10-05:00` as a date and time",
        'quote it: "2001-12-14t21:59:43.10-05:00"',
    ),
    (
        "1e-3",
        "1e-3",
        "YAML 1.1 reads `1e-3` as text, YAML 1.2 as the number 0.001",
        'write 0.001 if you mean the number, or quote it ("1e-3") if you mean the text',
    ),
    ("1e5", "1e5", "YAML 1.2 as the number 100000.0", "write 100000.0 if you mean"),
    ("1e-7", "1e-7", "YAML 1.2 as the number 1.0e-07", "write 1.0e-07 if you mean"),
    ("09", "09", "YAML 1.1 reads `09` as text, YAML 1.2 as the number 9", "write 9"),
    ("-.5", "-.5", "YAML 1.2 as the number -0.5", "write -0.5"),
    ("0o17", "0o17", "YAML 1.1 reads `0o17` as text, YAML 1.2 as the number 15", "write 15"),
]


@pytest.mark.parametrize(("raw", "value", "message", "fix"), VALUE_READINGS)
def test_yaml11_readings_of_values(raw: str, value: Any, message: str, fix: str) -> None:
    text = f"kind: X\nspec:\n  items:\n    - {raw}\n"
    docs, problems = load_text(text, "f.yaml")
    p = one(problems)
    assert (p.line, p.path) == (4, "spec.items[0]")
    assert message in p.message and fix in p.fix
    assert "quote it" in str(p)
    body = docs[0].body["spec"]["items"][0]
    assert body == value and type(body) is type(value)
    assert docs[0].locations.coerced == {("spec", "items", 0)}


@pytest.mark.parametrize(
    "raw",
    ["true", "false", "True", "FALSE", "0", "-7", "1536", "0x10", "0.5", "-1.5", "2.10", ".5",
     "1.0e+5", "null", "~", "=", "<<", "1.0.0", "v1", "12ab", "1e", "+", "-x", ".", "0o8"],
)  # fmt: skip
def test_values_every_reader_agrees_on(raw: str) -> None:
    docs, problems = load_text(f"a: {raw}\n", "f.yaml")
    assert problems == [] and docs[0].locations.coerced == set()


def test_raw_text_is_kept_for_the_schema() -> None:
    docs, problems = load_text("version: 2.10\nn: 0512\n", "f.yaml")
    assert one(problems).line == 2  # 2.10 is a float in YAML 1.2 too: the schema's to report
    loc = docs[0].locations
    assert loc.raw == {("version",): "2.10", ("n",): "0512"}
    assert docs[0].body["version"] == 2.1 and ("version",) not in loc.coerced


KEY_READINGS = [
    ("on", "`on` as a key is read as the boolean true", 'quote it: "on"'),
    ("Off", "`Off` as a key is read as the boolean false", 'quote it: "Off"'),
    ("true", "`true` as a key is read as the boolean true", 'quote it: "true"'),
    ("2.10", "`2.10` as a key is read as the number 2.1", 'quote it: "2.10"'),
    ("~", "`~` as a key is read as null", 'quote it: "~"'),
    ("null", "`null` as a key is read as null", 'quote it: "null"'),
    ("0x10", "`0x10` as a key is read as the number 16", 'quote it: "0x10"'),
    ("0512", "`0512` as a key is read as the number 330", 'quote it: "0512"'),
    ("2026-01-01", "`2026-01-01` as a key is read as a date", 'quote it: "2026-01-01"'),
    (".nan", "`.nan` as a key is read as a number that is not finite", 'quote it: ".nan"'),
]


@pytest.mark.parametrize(("raw", "message", "fix"), KEY_READINGS)
def test_yaml11_readings_of_keys(raw: str, message: str, fix: str) -> None:
    docs, problems = load_text(f"kind: X\nlabels:\n  {raw}: v\n", "f.yaml")
    p = one(problems)
    assert (p.line, p.path, p.message, p.fix) == (3, f"labels.{raw}", message, fix)
    assert docs[0].body["labels"] == {raw: "v"}  # the key keeps its text
    assert docs[0].locations.coerced == {("labels", raw)}
    assert docs[0].locations.key_line(("labels", raw)) == 3


def test_keys_whose_reading_keeps_their_text_pass() -> None:
    docs, problems = load_text('5: a\n1.5: b\n-3: c\n"on": d\n=: e\n', "f.yaml")
    assert problems == []
    assert docs[0].body == {"5": "a", "1.5": "b", "-3": "c", "on": "d", "=": "e"}


def test_an_empty_key() -> None:
    _, problems = load_text("? \n: v\n", "f.yaml")
    p = one(problems)
    assert (p.line, p.message, p.fix) == (1, "an empty key is read as null", "write the key's name")


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (".nan", "NaN (not a number)"),
        (".NaN", "NaN (not a number)"),
        (".inf", "infinity"),
        ("+.INF", "infinity"),
        ("-.Inf", "minus infinity"),
        ("1.0e+400", "infinity"),  # overflows
        ("-1.0e+400", "minus infinity"),
        ("1.0e400", "infinity"),  # text to YAML 1.1, infinity to YAML 1.2
    ],
)
def test_nan_and_infinities_are_refused(raw: str, what: str) -> None:
    docs, problems = load_text(f"spec:\n  temperature: {raw}\n", "f.yaml")
    p = one(problems)
    assert p.line == 2 and p.path == "spec.temperature"
    assert p.message == f"is not a finite number: YAML reads `{raw}` as {what}"
    assert p.fix == f'write a finite number, or quote it ("{raw}") if you mean the text'
    assert docs[0].body["spec"]["temperature"] == raw  # never NaN in a body


def test_numbers_too_long_to_parse_are_refused_not_computed() -> None:
    long_int = "1" * 5000  # Python refuses to parse more than 4,300 digits
    base60 = "1" + ":1" * 200_000  # quadratic to compute
    long_key = "1" * 500  # libyaml allows keys up to 1,024 characters
    docs, problems = load_text(f"a: {long_int}\nb: {base60}\n{long_key}: c\n", "f.yaml")
    assert [p.line for p in problems] == [1, 2, 3]
    assert "(5,000 characters) as a number, longer than any field takes" in problems[0].message
    assert "(400,001 characters)" in problems[1].message
    assert problems[2].message.endswith("as a key is read as a number")
    assert all(len(p.message) + len(p.fix) < 300 for p in problems)
    assert docs[0].body["a"] == long_int


def test_problems_name_their_document() -> None:
    text = "apiVersion: llmgw/v1\nkind: Prompt\nmetadata:\n  name: agent-a\nspec:\n  topP: .nan\n"
    _, problems = load_text(text, "f.yaml")
    p = one(problems)
    assert (p.kind, p.name, p.path) == ("Prompt", "agent-a", "spec.topP")
    assert str(p).startswith("f.yaml:6: Prompt/agent-a: spec.topP: is not a finite number")


def test_dates_are_read_when_asked() -> None:
    problems: list[Problem] = []
    docs = list(
        parse_documents("a: 2026-12-31\nb: 2026-12-31 10:00:00\n", "f", problems, dates=True)
    )
    assert problems == []
    assert docs[0][0] == {"a": dt.date(2026, 12, 31), "b": dt.datetime(2026, 12, 31, 10)}


# --- documents -----------------------------------------------------------------------------


def test_empty_documents_are_ignored() -> None:
    docs, problems = load_text("---\n---\nkind: X\n", "f.yaml")
    assert problems == [] and len(docs) == 1 and docs[0].line == 3


def test_null_documents_are_reported() -> None:
    docs, problems = load_text("--- null\n---\nkind: X\n--- ~\n---\nNULL\n", "f.yaml")
    assert [d.body for d in docs] == [{"kind": "X"}]
    assert [(p.line, p.message, p.fix) for p in problems] == [
        (1, "the document is null", "remove it or write the manifest"),
        (4, "the document is null", "remove it or write the manifest"),
        (6, "the document is null", "remove it or write the manifest"),
    ]


def test_documents_before_a_syntax_error_are_kept() -> None:
    docs, problems = load_text("kind: A\n---\nkind: B\n---\nkind: [C\n---\nkind: D\n", "f.yaml")
    assert [d.body["kind"] for d in docs] == ["A", "B"]
    assert [(p.line, p.message) for p in problems] == [
        (6, "YAML syntax error: did not find expected ',' or ']'")
    ]


def test_documents_that_are_not_mappings() -> None:
    _, problems = load_text("- a\n--- text\n--- 5\n", "f.yaml")
    assert [(p.line, p.message) for p in problems] == [
        (1, "document is a list, not a mapping"),
        (2, "document is a string, not a mapping"),
        (3, "document is a int, not a mapping"),
    ]


# --- characters and lines ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "named"),
    [
        ("\x00", "the control character U+0000 (NUL)"),
        ("\x07", "the control character U+0007 (BEL)"),
        ("\x1b", "the control character U+001B (ESC)"),
        ("\x7f", "the control character U+007F (DEL)"),
        ("\x9b", "the control character U+009B (CSI)"),
        ("\ufffe", "the noncharacter U+FFFE"),
        ("\uffff", "the noncharacter U+FFFF"),
    ],
)
def test_forbidden_characters_are_reported_at_their_line(char: str, named: str) -> None:
    data = f"kind: X\nspec:\n  a: é{char}b\n".encode()
    docs, problems = load_bytes(data, "f.yaml")
    p = one(problems)
    assert (p.line, p.message) == (3, f"contains {named} at column 7")
    assert p.fix == "delete it: YAML does not allow this character in a file"
    assert docs == []


def test_forbidden_characters_on_many_lines_are_bounded() -> None:
    text = "a: 1\n" + "b: \x00\x00\n" * 30
    _, problems = load_text(text, "f.yaml")
    assert [p.line for p in problems] == [*range(2, 2 + loader.MAX_CHARACTER_LINES), 22]
    assert problems[-1].message == "and 10 more lines contain characters YAML does not allow"


def test_line_separators_neither_shift_lines_nor_change_values() -> None:
    text = (
        "kind: X\n"
        "spec:\n"
        "  plain: one\u2028two\n"
        '  quoted: "three\x85four"\n'
        "  block: |\n"
        "    five\u2029six\n"
        "    seven {{x}}\n"
        "  single: 'x\u2028y'\n"
        "  late: 0512\n"
        "  key\u2028name: v\n"
    )
    docs, problems = load_text(text, "f.yaml")
    assert [(p.line, p.path) for p in problems] == [(9, "spec.late")]
    spec, loc = docs[0].body["spec"], docs[0].locations
    assert spec["plain"] == "one\u2028two"
    assert spec["quoted"] == "three\x85four"
    assert spec["block"] == "five\u2029six\nseven {{x}}\n"
    assert spec["single"] == "x\u2028y"
    assert "key\u2028name" in spec
    assert loc.line(("spec", "single")) == 8 and loc.key_line(("spec", "key\u2028name")) == 10
    assert loc.text_line(("spec", "block"), spec["block"].index("{{x}}")) == 7


def test_line_separators_beside_private_use_characters() -> None:
    text = "a: \ue000\ue001\u2028\ue002\nb: 0512\n"
    docs, problems = load_text(text, "f.yaml")
    assert docs[0].body["a"] == "\ue000\ue001\u2028\ue002"
    assert [p.line for p in problems] == [2]


def test_syntax_errors_after_a_line_separator_keep_their_line() -> None:
    # libyaml alone puts this error at line 5: each separator counted as a line break
    text = "a: 'x\u2028y\u2028z'\nb: 1\n  c: 2\nd: 3\ne: 4\nf: 5\ng: 6\n"
    _, problems = load_text(text, "f.yaml")
    p = one(problems)
    assert (p.line, p.message) == (
        3,
        "YAML syntax error: mapping values are not allowed in this context",
    )


def test_crlf_files() -> None:
    data = b"kind: X\r\nspec:\r\n  text: |\r\n    a\r\n    b {{x}}\r\n  n: 0512\r\n"
    docs, problems = load_bytes(data, "f.yaml")
    assert [(p.line, p.path) for p in problems] == [(6, "spec.n")]
    text = docs[0].body["spec"]["text"]
    assert text == "a\nb {{x}}\n"
    assert docs[0].locations.text_line(("spec", "text"), text.index("{{x}}")) == 5


def test_lone_carriage_returns_are_refused() -> None:
    docs, problems = load_bytes(b"kind: X\nspec:\n  a: 1\r  b: 2\r  c: 3\n", "f.yaml")
    p = one(problems)
    assert (p.line, p.message) == (
        3,
        "a carriage return without a line feed at line 3 (and 1 more)",
    )
    assert p.fix == "save the file with LF or CRLF line endings"
    assert docs == []


def test_locations() -> None:
    text = (
        "kind: X\nspec:\n  items:\n    - one\n    - two\n  text: |\n    a\n    b {{x}}\n  v: 2.10\n"
    )
    docs, problems = load_text(text, "f.yaml")
    assert problems == []
    loc = docs[0].locations
    assert loc.line(("spec", "items", 1)) == 5
    assert loc.key_line(("spec", "items")) == 3
    body = docs[0].body["spec"]["text"]
    assert loc.text_line(("spec", "text"), body.index("{{x}}")) == 8
    assert loc.raw[("spec", "v")] == "2.10"
    assert docs[0].body["spec"]["v"] == 2.1


def test_bad_bytes_never_raise() -> None:
    cases = [
        b"\xff\xfe\x00",
        b"a: \x00",
        b"\x1b[31m: x",
        b"a: !!python/object:os.system x",
        b"a: 2026-02-30",
        b"a: " + b"9" * 5000,
        b"{" * 200,
        b"a: &a [*a]",
        b"\r\r\r",
        b"--- !x\n--- !!binary\n--- &a\n",
        "a: \u2028\u2029\x85: b".encode(),
        b"? [a]\n: b",
        b"a: !<tag:yaml.org,2002:int> 5",
    ]
    for data in cases:
        _, problems = load_bytes(data, "f.yaml")
        assert problems, data


def test_utf8_bom_accepted() -> None:
    docs, problems = load_bytes("\ufeffkind: X\n".encode(), "f.yaml")
    assert problems == [] and docs[0].body == {"kind": "X"}
