"""The pseudonymous patient key: HMAC-SHA256 of the FHIR patient id under a secret key.

The key comes from `IVIG_CDS_PSEUDONYM_KEY` or a key file (created with mode 0600 when absent)
and is never written to the store, so that reading the store alone re-identifies no one, while
the same patient still gets the same key across decisions.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["ENV_KEY", "Pseudonymizer", "load_key"]

ENV_KEY = "IVIG_CDS_PSEUDONYM_KEY"


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def __call__(self, patient_id: str) -> str:
        return hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()


def load_key(key_file: Path) -> bytes:
    """The key from the environment, else from `key_file`, created (0600) when absent."""
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
