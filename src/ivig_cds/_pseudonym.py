"""The pseudonymous patient key: HMAC-SHA256 of the FHIR patient id under a secret key.

Shared by the edges that write patients down (the service's decision store, the population
audit), so that one patient gets one key everywhere while their outputs alone re-identify no
one. The key comes from `IVIG_CDS_PSEUDONYM_KEY` or a key file (by default the one `serve`
creates in the data folder, `_data_dir`) and is never written anywhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ivig_cds._data_dir import DATA_DIR_ENV, default_key_file, git_work_tree
from ivig_cds._errors import IvigCdsError

__all__ = [
    "ENV_KEY",
    "PseudonymKeyError",
    "Pseudonymizer",
    "ensure_key",
    "read_default_key",
    "read_key",
]

ENV_KEY = "IVIG_CDS_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16


class PseudonymKeyError(IvigCdsError, ValueError):
    """No usable pseudonym key was given."""


class Pseudonymizer:
    """`patient id -> hex HMAC-SHA256`; picklable, so worker processes can carry it."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __call__(self, patient_id: str) -> str:
        return hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()


def ensure_key(key_file: Path, *, allow_in_work_tree: bool = False) -> bool:
    """Make sure a key exists for the service: create `key_file` (0600, 256 random bits) unless
    `IVIG_CDS_PSEUDONYM_KEY` is set or the file exists. Returns True when it created the file.

    A new key is not created inside a git work tree unless `allow_in_work_tree`: there the next
    `git add .` would commit it, with the decision store beside it.

    Raises:
        PseudonymKeyError: refused inside a work tree, or the file cannot be created.
    """
    if os.environ.get(ENV_KEY) or key_file.exists():
        return False
    tree = git_work_tree(key_file)
    if tree is not None and not allow_in_work_tree:
        raise PseudonymKeyError(
            f"not creating a pseudonym key at {key_file}: it is inside the git work tree {tree}, "
            f"where `git add .` would commit it; keep it outside ({DATA_DIR_ENV} or "
            "--pseudonym-key-file) or pass --allow-key-in-work-tree"
        )
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False  # another process made it first: theirs is the key
    except OSError as exc:
        raise PseudonymKeyError(
            f"cannot create the pseudonym key {key_file}: {exc.strerror or type(exc).__name__}"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return True


def read_key(key_file: Path | None = None) -> bytes:
    """The key from `IVIG_CDS_PSEUDONYM_KEY`, else from an existing `key_file` (never created:
    a new key would give keys that match nothing already recorded).

    Raises:
        PseudonymKeyError: neither is set, or the file cannot be read.
    """
    from_env = os.environ.get(ENV_KEY)
    if from_env:
        return from_env.encode()
    if key_file is None:
        raise PseudonymKeyError(
            f"no pseudonym key: set {ENV_KEY} or give a key file (or keep FHIR ids with --keep-ids)"
        )
    try:
        return key_file.read_text(encoding="ascii").strip().encode()
    except (OSError, UnicodeDecodeError) as exc:
        raise PseudonymKeyError(
            f"{key_file}: cannot read the pseudonym key ({type(exc).__name__})"
        ) from None


def read_default_key(key_file: Path | None = None) -> bytes:
    """The key `ivig-cds serve` uses: from `IVIG_CDS_PSEUDONYM_KEY`, else `key_file`, else the
    service's own key file in the data folder. Never created.

    Raises:
        PseudonymKeyError: no key there (the message says how to get one), or it is unreadable.
    """
    if key_file is not None or os.environ.get(ENV_KEY):
        return read_key(key_file)
    default = default_key_file()
    if not default.exists():
        raise PseudonymKeyError(
            f"no pseudonym key at {default}, where `ivig-cds serve` keeps it: run `ivig-cds "
            f"serve` once to create it, pass --key-file PATH (or set {ENV_KEY}), or keep FHIR "
            "ids with --keep-ids"
        )
    return read_key(default)
