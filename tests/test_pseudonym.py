"""The pseudonymous patient key shared by the edges that write patients down."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from ivig_cds._pseudonym import ENV_KEY, Pseudonymizer, PseudonymKeyError, read_key


def test_the_key_is_hmac_sha256_of_the_fhir_id() -> None:
    key = b"0123456789abcdef"
    assert Pseudonymizer(key)("pt1") == hmac.new(key, b"pt1", hashlib.sha256).hexdigest()
    assert Pseudonymizer(key)("pt1") != Pseudonymizer(key + b"x")("pt1")


def test_a_short_key_is_refused() -> None:
    with pytest.raises(PseudonymKeyError, match="at least 16 bytes"):
        Pseudonymizer(b"short")


def test_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key"
    path.write_text("from-the-file-0123456789\n")
    monkeypatch.delenv(ENV_KEY, raising=False)
    assert read_key(path) == b"from-the-file-0123456789"
    monkeypatch.setenv(ENV_KEY, "from-the-environment")
    assert read_key(path) == b"from-the-environment"


def test_no_key_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    with pytest.raises(PseudonymKeyError, match="set IVIG_CDS_PSEUDONYM_KEY or give a key file"):
        read_key(None)
    with pytest.raises(PseudonymKeyError, match="cannot read the pseudonym key"):
        read_key(tmp_path / "absent")
