"""The pseudonymous patient key: HMAC-SHA256 of the FHIR patient id under a secret key.

Shared by the edges that write patients down (the service's decision store, the population
audit), so that one patient gets one key everywhere while their outputs alone re-identify no
one. The key comes from `IVIG_CDS_PSEUDONYM_KEY` or a key file and is never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ivig_cds._errors import IvigCdsError

__all__ = ["ENV_KEY", "PseudonymKeyError", "Pseudonymizer", "load_key", "read_key"]

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


def load_key(key_file: Path) -> bytes:
    """The key from the environment, else from `key_file`, created (0600) when absent (the
    service's store: its first start makes the key)."""
    from_env = os.environ.get(ENV_KEY)
    if from_env:
        return from_env.encode()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text(encoding="ascii").strip().encode()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key_file.read_text(encoding="ascii").strip().encode()


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
