"""The pseudonymous patient key shared by the edges that write patients down: where it is
made, where it is found, and where it is never made."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from ivig_cds._data_dir import DATA_DIR_ENV, KEY_FILE, data_dir, git_work_tree
from ivig_cds._pseudonym import (
    ENV_KEY,
    Pseudonymizer,
    PseudonymKeyError,
    ensure_key,
    read_default_key,
    read_key,
)


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)


def test_the_key_is_hmac_sha256_of_the_fhir_id() -> None:
    """A patient's key is HMAC-SHA256 of the FHIR id; another key gives another pseudonym."""
    key = b"0123456789abcdef"
    assert Pseudonymizer(key)("pt1") == hmac.new(key, b"pt1", hashlib.sha256).hexdigest()
    assert Pseudonymizer(key)("pt1") != Pseudonymizer(key + b"x")("pt1")


def test_a_short_key_is_refused() -> None:
    """A key under 16 bytes is refused, saying the minimum."""
    with pytest.raises(PseudonymKeyError, match="at least 16 bytes"):
        Pseudonymizer(b"short")


def test_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IVIG_CDS_PSEUDONYM_KEY, when set, is the key whatever the file holds."""
    path = tmp_path / "key"
    path.write_text("from-the-file-0123456789\n")
    monkeypatch.delenv(ENV_KEY, raising=False)
    assert read_key(path) == b"from-the-file-0123456789"
    monkeypatch.setenv(ENV_KEY, "from-the-environment")
    assert read_key(path) == b"from-the-environment"


def test_no_key_says_what_to_do(tmp_path: Path, no_env_key: None) -> None:
    """Reading without a key, or from a missing file, is an error saying what to do."""
    with pytest.raises(PseudonymKeyError, match="set IVIG_CDS_PSEUDONYM_KEY or give a key file"):
        read_key(None)
    with pytest.raises(PseudonymKeyError, match="cannot read the pseudonym key"):
        read_key(tmp_path / "absent")


def test_a_key_is_created_private_once(tmp_path: Path, no_env_key: None) -> None:
    """The first call creates a 0600 file holding 64 hex digits; later calls keep it."""
    path = tmp_path / "k.key"
    assert ensure_key(path) is True
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first.strip()) == 64
    assert ensure_key(path) is False
    assert path.read_text() == first


def test_with_the_environment_no_file_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When IVIG_CDS_PSEUDONYM_KEY is set, ensure_key writes nothing."""
    monkeypatch.setenv(ENV_KEY, "from-the-environment-0123456789")
    assert ensure_key(tmp_path / "k.key") is False
    assert not (tmp_path / "k.key").exists()


def test_a_new_key_is_refused_inside_a_git_work_tree(tmp_path: Path, no_env_key: None) -> None:
    """Inside a work tree (a `.git` above it) no key is created unless allowed; an existing
    key there is still used."""
    (tmp_path / ".git").mkdir()
    path = tmp_path / "deep" / "k.key"
    path.parent.mkdir()
    with pytest.raises(PseudonymKeyError) as refused:
        ensure_key(path)
    assert str(refused.value) == (
        f"not creating a pseudonym key at {path}: it is inside the git work tree {tmp_path}, "
        "where `git add .` would commit it; keep it outside (IVIG_CDS_DATA_DIR or "
        "--pseudonym-key-file) or pass --allow-key-in-work-tree"
    )
    assert not path.exists()
    assert ensure_key(path, allow_in_work_tree=True) is True
    assert ensure_key(path) is False  # it exists now: nothing to create, nothing refused


def test_a_git_file_marks_a_work_tree_too(tmp_path: Path) -> None:
    """A `.git` file (a linked worktree or submodule) counts as a work tree; no `.git` does not."""
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text("gitdir: /elsewhere\n")
    assert git_work_tree(tmp_path / "wt" / "a" / "k.key") == tmp_path / "wt"
    if not any((folder / ".git").exists() for folder in tmp_path.parents):
        assert git_work_tree(tmp_path / "plain" / "k.key") is None


def test_a_key_that_cannot_be_created_is_one_sentence(tmp_path: Path, no_env_key: None) -> None:
    """A key file in a folder that does not exist is an error naming it, not a traceback."""
    path = tmp_path / "missing" / "k.key"
    with pytest.raises(PseudonymKeyError) as failed:
        ensure_key(path)
    assert str(failed.value) == (
        f"cannot create the pseudonym key {path}: No such file or directory"
    )


def test_the_data_folder_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IVIG_CDS_DATA_DIR names the data folder, made absolute."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_DIR_ENV, "state")
    assert data_dir() == tmp_path / "state"


def test_the_default_key_is_the_one_serve_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env_key: None
) -> None:
    """Without a key file, read_default_key reads the key serve creates in the data folder;
    a key file given, or the environment, wins; nothing is ever created."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(PseudonymKeyError) as missing:
        read_default_key()
    assert str(missing.value) == (
        f"no pseudonym key at {tmp_path / KEY_FILE}, where `ivig-cds serve` keeps it: run "
        "`ivig-cds serve` once to create it, pass --key-file PATH (or set "
        "IVIG_CDS_PSEUDONYM_KEY), or keep FHIR ids with --keep-ids"
    )
    assert not (tmp_path / KEY_FILE).exists()
    ensure_key(tmp_path / KEY_FILE)
    assert read_default_key() == (tmp_path / KEY_FILE).read_text().strip().encode()
    other = tmp_path / "other.key"
    other.write_text("another-key-0123456789\n")
    assert read_default_key(other) == b"another-key-0123456789"
    monkeypatch.setenv(ENV_KEY, "from-the-environment")
    assert read_default_key() == b"from-the-environment"
