"""Files a run writes besides the audit log (a saved plan, a metrics file): checked writable
before the run sends anything, then replaced atomically.

``check_writable`` proves the folder takes a new file (it writes, fsyncs and removes a probe),
so a full disk, a read-only mount or a missing permission is found before the first write to the
org, not after it. ``write_atomic`` writes a temporary file beside the target, fsyncs it and
renames it over the target, so a reader (node_exporter's textfile collector, the apply job)
never sees half a file. A symlink is followed: the file it points to is replaced, the link stays.
A target that exists and is not a regular file (a folder, a device such as /dev/full, a FIFO) is
refused, never replaced. Every failure is ``FileError`` naming the path and the reason; nothing
here prints.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from reconciler.errors import FileError


def _target(path: str) -> str:
    """The path the data will land at: symlinks followed; FileError when it exists and is not a
    regular file."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except NotADirectoryError:
        raise FileError(path, "a part of its path is not a folder") from None
    except OSError as exc:
        raise FileError(path, f"cannot be examined ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(path, "is a folder", "name a file")
    if not stat.S_ISREG(st.st_mode):
        what = "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "special"
        shown = path if real == path else f"{path} (-> {real})"
        raise FileError(shown, f"is not a regular file ({what})", "name a regular file")
    return real


def check_writable(path: str) -> None:
    """FileError unless a file can be written at ``path`` (its folder is created if needed)."""
    real = _target(path)
    folder = os.path.dirname(real) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".llmgw-probe-", dir=folder)
    except OSError as exc:
        raise FileError(path, f"its folder cannot take a new file ({exc.strerror})") from None
    try:
        os.write(fd, b"llmgw\n")
        os.fsync(fd)
    except OSError as exc:
        raise FileError(path, f"cannot be written ({exc.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)


def write_atomic(path: str, text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically; FileError when it cannot."""
    real = _target(path)
    folder = os.path.dirname(real) or "."
    tmp = ""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.tmp-", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
        tmp = ""
    except OSError as exc:
        raise FileError(path, f"cannot be written ({exc.strerror})") from None
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
