"""Where caches live, and writes that a crash or a kill can never leave half done.

A file write goes to a temporary file in the destination folder and a folder build to a
temporary sibling folder; either is renamed over the final name only once complete, so
a later run never trusts a partial result. Removal renames aside first for the same
reason: a folder is either whole under its name or gone.

A process killed with SIGKILL runs no cleanup, so its temporary folder stays behind.
Every temporary name therefore records its creator (``.<name>.p<pid>-<host>-<random>.tmp``,
``<host>`` a short hash of the host name) and :func:`is_stale` tells a folder whose
creator is gone from one still being written: later runs and ``kws cache clear`` remove
the stale ones (:func:`remove_stale_siblings`).
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import platformdirs

CACHE_ENV = "KWS_CACHE_DIR"

#: A temporary folder whose creator cannot be asked (no pid in its name, or made on
#: another host) is taken as left behind once it is this old.
STALE_TEMP_AGE = datetime.timedelta(hours=1)
#: A temporary folder whose recorded creator still runs is taken as left behind only
#: after this long: the pid may have been reused by an unrelated process.
LIVE_TEMP_AGE = datetime.timedelta(days=1)

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_CREATOR_RE = re.compile(r"\.p(\d+)-([0-9a-f]{8})-[^/]*\.tmp$")


def cache_root() -> Path:
    """The cache folder: ``$KWS_CACHE_DIR`` if set, else the user's cache dir."""
    env = os.environ.get(CACHE_ENV)
    root = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("kws-pathways"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _umask() -> int:
    """The process's umask: from /proc where there is one (setting it to read it would
    briefly change it for every thread), else set and set straight back."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it. The
    file gets the permissions a plain ``open`` would give it (``mkstemp``'s 0600 is for
    the temporary file only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it is renamed to ``path``.

    On any error the temporary folder is removed and ``path`` is left untouched.
    ``path`` must not exist yet. Stale temporary folders of ``path`` (left by writers
    that were killed) are removed first, so a kill costs disk space only until the next
    attempt.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_folder(path: Path) -> None:
    """Rename ``path`` aside, then delete it, so it never appears half-deleted.

    The aside name is a hidden ``.tmp`` sibling, which no reader takes for an entry.
    """
    aside = path.with_name(f"{temp_prefix(path)}removed{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process removed it first
    shutil.rmtree(aside, ignore_errors=True)


def temp_prefix(path: Path) -> str:
    """The start of every temporary name beside ``path``: hidden, and naming this process
    and host, so that a later run can tell whether the creator is still alive."""
    return f".{Path(path).name}.p{os.getpid()}-{_HOST}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    try:  # a killed child not yet reaped by its parent is a zombie: it is gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_stale(tmp: Path, now: float | None = None, *,
             live_age: datetime.timedelta | None = LIVE_TEMP_AGE) -> bool:
    """Whether temporary folder ``tmp`` was left by a process that is gone.

    Its creator recorded on this host and dead: stale at once. Still alive: stale only
    after ``live_age`` (its pid may belong to another process by now; None: never).
    Unknown (an older name, another host): stale after :data:`STALE_TEMP_AGE`.
    """
    now = time.time() if now is None else now
    try:
        age = now - tmp.stat().st_mtime
    except FileNotFoundError:
        return False
    match = _CREATOR_RE.search(tmp.name)
    if match and match.group(2) == _HOST:
        pid = int(match.group(1))
        if pid == os.getpid():
            return False  # this process's own, possibly in another thread
        if not _pid_alive(pid):
            return True
        return live_age is not None and age > live_age.total_seconds()
    return age > STALE_TEMP_AGE.total_seconds()


def temporaries(folder: Path, name: str = "*") -> list[Path]:
    """The temporary folders in ``folder`` (those beside ``folder/name`` if ``name``)."""
    if not Path(folder).is_dir():
        return []
    pattern = f".{name if name == '*' else glob.escape(name)}.*.tmp"
    return sorted(p for p in Path(folder).glob(pattern) if p.is_dir())


def remove_stale_siblings(path: Path, *, live_age: datetime.timedelta | None = LIVE_TEMP_AGE) -> list[Path]:
    """Remove the stale temporary folders beside ``path`` (left by killed writers of it;
    ``live_age`` as for :func:`is_stale`); returns those removed."""
    path = Path(path)
    stale = [tmp for tmp in temporaries(path.parent, path.name) if is_stale(tmp, live_age=live_age)]
    for tmp in stale:
        shutil.rmtree(tmp, ignore_errors=True)
    return stale


def relative_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a ``/``-separated relative name."""
    return [
        (Path(dirpath) / name).relative_to(folder).as_posix()
        for dirpath, _, names in os.walk(folder)
        for name in names
    ]


def sha256_file(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (links counted as themselves)."""
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
