"""Where ivig-cds keeps its state: one per-user data folder, never the working directory.

`ivig-cds serve` writes its decision store, journal and pseudonym key there; `audit` reads that
store and `population` that key by default, so the commands find each other's files from any
folder. State left in the working directory was committed by the first `git add .` of a user
who started the service inside a checkout; the key with it, and the key is what keeps the
store and the audit outputs pseudonymous.

The folder is `IVIG_CDS_DATA_DIR` when set, else the platform's per-user data folder
(`~/.local/share/ivig-cds` on Linux, honouring `XDG_DATA_HOME`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATA_DIR_ENV",
    "JOURNAL_DIR",
    "KEY_FILE",
    "STORE_FILE",
    "data_dir",
    "default_journal",
    "default_key_file",
    "default_store_url",
    "git_work_tree",
]

DATA_DIR_ENV = "IVIG_CDS_DATA_DIR"
# The names also used in a working directory given explicitly (`.gitignore` lists them).
STORE_FILE = "ivig-cds.sqlite3"
JOURNAL_DIR = "ivig-cds-journal"
KEY_FILE = "ivig-cds-pseudonym.key"


def data_dir() -> Path:
    """The data folder, as an absolute path (it may not exist yet)."""
    chosen = os.environ.get(DATA_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    from platformdirs import user_data_path  # noqa: PLC0415 (only the commands that keep state)

    return user_data_path("ivig-cds", appauthor=False).absolute()


def default_store_url() -> str:
    """The SQLite store `serve` records to, and `audit` reads, unless told otherwise."""
    return f"sqlite:///{data_dir() / STORE_FILE}"


def default_journal() -> Path:
    return data_dir() / JOURNAL_DIR


def default_key_file() -> Path:
    return data_dir() / KEY_FILE


def git_work_tree(path: Path) -> Path | None:
    """The top of the git work tree holding `path` (which need not exist), else None.

    Found as git finds it, by a `.git` folder or file in `path` or a parent, without running
    git, which may not be installed.
    """
    for folder in path.absolute().parents:
        if (folder / ".git").exists():
            return folder
    return None
