"""Where a study lives: a journal file under ``results/search/`` by default (embedded, no
server; several processes on one machine, or on machines that share the folder, append
to it under a file lock), or any database URL Optuna's RDB storage takes
(``postgresql://user@host/db``) for processes on many machines."""

from __future__ import annotations

import re
from pathlib import Path

from kws.search.objectives import SearchError

SEARCH_DIR = "search"
JOURNAL_SUFFIX = ".journal"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_study_name(name: str) -> str:
    """Study names become file names and case ids: letters, digits, ``_``, ``.``, ``-``."""
    if not _NAME.match(name or ""):
        raise SearchError(f"study name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a "
                          "letter or digit")
    return name


def redact(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def journal_path(results_dir: Path, study: str) -> Path:
    return Path(results_dir) / SEARCH_DIR / f"{study}{JOURNAL_SUFFIX}"


def is_url(storage: str) -> bool:
    return "://" in storage


def describe(storage: str | None, results_dir: Path, study: str) -> str:
    """The storage as messages and records name it (passwords hidden)."""
    if storage is None:
        return str(journal_path(results_dir, study))
    return redact(storage) if is_url(storage) else storage


def open_storage(storage: str | None, results_dir: Path, study: str):
    """The Optuna storage: ``None`` is the study's journal file under ``results_dir``;
    a path is a journal file; a URL with ``://`` an RDB storage, connected now so that
    a server that cannot be reached fails here, naming the URL, before any training."""
    import optuna

    # Optuna's own INFO lines (a study created, each trial finished) would flood a CI log;
    # the search prints its own progress and answer.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None or not is_url(storage):
        path = journal_path(results_dir, study) if storage is None else Path(storage)
        if path.exists() and not path.is_file():
            raise SearchError(f"--storage {path}: a folder, not a journal file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(
                str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path)))
        except OSError as exc:
            raise SearchError(f"--storage {path}: cannot open the journal file ({exc.strerror or exc})") from None
        return optuna.storages.JournalStorage(backend)
    kwargs, url = {"pool_pre_ping": True}, storage
    if url.startswith(("postgresql://", "postgres://")):
        # The driver this project installs (psycopg 3); SQLAlchemy's default is psycopg2.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError as exc:
        raise SearchError(f"--storage {redact(storage)}: no database driver for it ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors name the cause; we name the URL
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"--storage {redact(storage)}: cannot open the study storage ({reason})") from None
