"""The pseudonymous patient key: HMAC-SHA256 of the FHIR patient id under a secret key.

Shared by the edges that write patients down (the population audit; the decision store uses
the same scheme), so that one patient gets one key everywhere while the outputs alone
re-identify no one. The key comes from `IVIG_CDS_PSEUDONYM_KEY` or a key file and is never
written to any output.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from ivig_cds._errors import IvigCdsError

ENV_KEY = "IVIG_CDS_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16


class PseudonymKeyError(IvigCdsError, ValueError):
    """No usable pseudonym key was given."""


class Pseudonymizer:
    """`patient id -> hex HMAC-SHA256`; picklable, so worker processes can carry it."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        self._key = key

    def __call__(self, patient_id: str) -> str:
        return hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()


def read_key(key_file: Path | None = None) -> bytes:
    """The key from `IVIG_CDS_PSEUDONYM_KEY`, else from `key_file` (its first line).

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
