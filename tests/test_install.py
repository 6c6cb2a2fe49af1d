"""llmgw installed the ways users install it, run from outside the checkout.

Covers: the wheel `python -m build` makes (isolated, as pip builds for users) carries the JSON
Schemas byte for byte, the emulator and the `llmgw` command; installed from that wheel into a
fresh venv outside the checkout (dependencies from the package index), `llmgw validate` exits 0 on
the example manifests and 1 naming a bad file; `llmgw emulator serve --port 0` from that venv
serves, and that venv's `llmgw plan`, `llmgw apply --auto-approve` and a second plan (in sync)
run against it. `pre-commit try-repo <checkout> llmgw-validate` in a scratch git repository
(PRE_COMMIT_HOME in tmp) exits 0 on good manifests and 1 naming the bad file.

The helpers (the checkout committed into a tmp repository tagged with the pinned version, the
wheel, the installed venv) are cached per session and shared with test_ci_examples.py, so each
is made once. None of this writes into the checkout: a build writes build/ and *.egg-info into
its source, so it builds from the tmp repository.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import tomllib

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["version"]
TAG = f"v{VERSION}"
BAD = REPO / "tests" / "corpus" / "invalid" / "schema-name-slash.yaml"
INSTALL_TIMEOUT = 900  # a guard against a hung install, not a measurement


def clean_env(path_first: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no llmgw or Genesys Cloud settings, no Python or venv
    variables of the test run; ``path_first`` first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GENESYS_CLOUD_", "LLMGW_", "PYTHON", "PRE_COMMIT"))
        and k not in ("VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    }
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # no byte-compiling at install time (`pip install --no-compile`: pip reads its negative
    # options from the environment inverted, so "0" is what turns compiling off); the test
    # installs then take about 3 s less each, and Python compiles on first import instead
    env["PIP_NO_COMPILE"] = "0"
    env.update(extra)
    return env


def run(
    cmd: Sequence[str | Path], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _checked(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _git(cwd: Path, *args: str) -> None:
    identity = ["-c", "user.name=llmgw tests", "-c", "user.email=tests@llmgw.invalid"]
    env = clean_env(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    _checked(run(["git", *identity, "-c", "commit.gpgsign=false", *args], cwd, env))


def _base(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return root


@functools.cache
def source_repository(root: Path) -> Path:
    """The checkout as it is now (tracked and new files, ignored ones left out, symlinks kept)
    committed into a fresh git repository under ``root`` and tagged with the version the CI
    examples pin: what `pip install "llmgw @ git+URL@tag"` and the wheel build read."""
    dest = _base(root) / "llmgw"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in sorted(set(filter(None, listed.split("\0")))):
        source, target = REPO / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "the checkout under test")
    _git(dest, "tag", TAG)
    return dest


@functools.cache
def built_wheel(root: Path) -> Path:
    """The wheel `python -m build` makes from the source repository. Isolated, as pip builds
    for users: the build backend comes from build-system.requires, not from the test venv, so a
    wrong requirement there fails here (it costs about a second once the package cache is warm)."""
    out = _base(root) / "dist"
    source = source_repository(root)
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", out, source]
    _checked(run(cmd, root, clean_env(), timeout=INSTALL_TIMEOUT))
    (wheel,) = out.glob("llmgw-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A new virtual environment (no llmgw, no test packages); returns its bin folder."""
    _checked(run([sys.executable, "-m", "venv", path], path.parent, clean_env()))
    return path / "bin"


@functools.cache
def installed_from_wheel(root: Path) -> Path:
    """The bin folder of a fresh venv outside the checkout with the built wheel installed
    (dependencies from the package index)."""
    wheel = built_wheel(root)
    bin_dir = fresh_venv(_base(root) / "wheel-venv")
    pip = [bin_dir / "python", "-m", "pip", "install", "--quiet", wheel]
    _checked(run(pip, root, clean_env(), timeout=INSTALL_TIMEOUT))
    return bin_dir


def install_root(factory: pytest.TempPathFactory) -> Path:
    return factory.getbasetemp() / "llmgw-install"


@pytest.fixture(scope="session")
def wheel_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installed_from_wheel(install_root(tmp_path_factory))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A user's repository: the example manifests, nowhere near the checkout."""
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def test_the_wheel_carries_schemas_emulator_and_command(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with zipfile.ZipFile(built_wheel(install_root(tmp_path_factory))) as wheel:
        names = set(wheel.namelist())
        shipped = {
            Path(n).name: wheel.read(n) for n in names if n.startswith("reconciler/schemas/")
        }
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "llmgw = reconciler.cli:main" in wheel.read(entry_points).decode()
    packaged = {p.name: p.read_bytes() for p in (REPO / "reconciler" / "schemas").glob("*")}
    assert shipped == packaged
    assert {"reconciler/emulator/server.py", "reconciler/emulator/app.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "schemas/", "manifests/"))]


def test_installed_llmgw_is_the_one_in_the_venv(wheel_bin: Path, workdir: Path) -> None:
    code = "import reconciler, reconciler.defaults as s; print(reconciler.__file__, s.SCHEMA_DIR)"
    done = _checked(run([wheel_bin / "python", "-c", code], workdir, clean_env()))
    module, schemas = done.stdout.split()
    venv = wheel_bin.parent.resolve()
    assert Path(module).resolve().is_relative_to(venv)
    assert Path(schemas).resolve().is_relative_to(venv)
    assert not Path(module).resolve().is_relative_to(REPO)


def test_installed_llmgw_validates(wheel_bin: Path, workdir: Path) -> None:
    env = clean_env(wheel_bin)
    good = run(["llmgw", "validate", "manifests/"], workdir, env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "valid: 0 errors" in good.stdout
    shutil.copy(BAD, workdir / "manifests" / BAD.name)
    bad = run(["llmgw", "validate", "manifests/"], workdir, env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"manifests/{BAD.name}:5: " in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


@pytest.fixture
def installed_emulator(wheel_bin: Path, tmp_path: Path) -> Iterator[str]:
    """`llmgw emulator serve --port 0` of the installed venv, as a process; yields its URL and
    stops it with SIGTERM (it exits 0)."""
    proc = subprocess.Popen(
        [wheel_bin / "llmgw", "emulator", "serve", "--port", "0", "--ingest-delay", "0"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until it is listening, or it died (EOF)
        assert first.startswith("llmgw emulator listening on http://127.0.0.1:"), first + (
            proc.stderr.read() if proc.stderr else ""
        )
        yield first.split()[-1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_installed_llmgw_plans_and_applies_against_its_emulator(
    wheel_bin: Path, workdir: Path, installed_emulator: str
) -> None:
    env = clean_env(
        wheel_bin,
        GENESYS_CLOUD_API_URL=installed_emulator,
        GENESYS_CLOUD_CLIENT_ID="emulator-client",
        GENESYS_CLOUD_CLIENT_SECRET="emulator-secret",
    )
    plan = run(["llmgw", "plan", "manifests/", "--detailed-exitcode"], workdir, env)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "to create" in plan.stdout
    apply = run(["llmgw", "apply", "manifests/", "--auto-approve"], workdir, env)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert "Verified: live matches the manifests" in apply.stdout
    again = run(["llmgw", "plan", "manifests/", "--detailed-exitcode"], workdir, env)
    assert again.returncode == 0, again.stdout + again.stderr


def _scratch_repository(path: Path) -> Path:
    shutil.copytree(REPO / "manifests", path / "manifests")
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "manifests")
    return path


def test_pre_commit_try_repo_runs_the_hook(tmp_path: Path) -> None:
    """As a hook author tries a hook: try-repo on the checkout (its uncommitted changes to
    tracked files included, as try-repo does), in a scratch repository. try-repo installs the
    hook into a fresh temporary store on each run, llmgw and its dependencies included."""
    scratch = _scratch_repository(tmp_path / "scratch")
    env = clean_env(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), PRE_COMMIT_COLOR="never")
    try_repo = [sys.executable, "-m", "pre_commit", "try-repo", REPO, "llmgw-validate"]
    good = run([*try_repo, "--all-files"], scratch, env, timeout=INSTALL_TIMEOUT)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "llmgw validate" in good.stdout and "Passed" in good.stdout
    shutil.copy(BAD, scratch / "manifests" / BAD.name)
    _git(scratch, "add", "-A")
    bad = run([*try_repo, "--all-files"], scratch, env, timeout=INSTALL_TIMEOUT)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert f"manifests/{BAD.name}:5: " in bad.stdout
