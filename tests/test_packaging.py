"""The built wheel carries the knowledge base, so evaluate() works away from a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("ivig_cds-*.whl")
    return built


def test_wheel_contains_every_rule_and_evidence_file(wheel: Path) -> None:
    """Each YAML file of rules/ and evidence/ is inside the wheel under ivig_cds/_kb/."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"ivig_cds/_kb/{p.relative_to(REPO).as_posix()}"
        for folder in ("rules", "evidence")
        for p in (REPO / folder).rglob("*.yaml")
    }
    assert expected <= names
    assert "ivig_cds/py.typed" in names


def test_installed_wheel_evaluates_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    """Unpacked wheel, run from an unrelated folder: the packaged knowledge base is used."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r});"
        "import ivig_cds; from ivig_cds._loader import default_dirs;"
        "print(ivig_cds.__file__); print(default_dirs()[0]);"
        "print(ivig_cds.evaluate({'ms_phenotype': 'SPMS'}).tier.value)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    module, rules, tier = run.stdout.split()
    assert module.startswith(str(site))
    assert rules == str(site / "ivig_cds" / "_kb" / "rules")
    assert tier == "not_recommended"
