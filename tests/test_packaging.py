"""The built wheel carries the knowledge base, so evaluate() works away from a checkout."""

from __future__ import annotations

import email.parser
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import ivig_cds

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


def test_wheel_contains_the_report_templates(wheel: Path) -> None:
    """The HTML report renders from the installed package: its templates are in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = REPO / "src" / "ivig_cds" / "report" / "templates"
    expected = {f"ivig_cds/report/templates/{p.name}" for p in templates.iterdir()}
    assert {
        "ivig_cds/report/templates/index.html",
        "ivig_cds/report/templates/style.css",
    } <= expected
    assert expected <= names


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


def test_wheel_carries_the_license_and_the_compiled_module_for_this_python(wheel: Path) -> None:
    """Apache-2.0 text in the wheel; the wheel is tagged for, and holds the module built for,
    this interpreter (not its C source)."""
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    (license_file,) = (n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    assert archive.read(license_file) == (REPO / "LICENSE").read_bytes()
    assert b"Apache License\n                           Version 2.0" in archive.read(license_file)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert f"ivig_cds/_durable_compat{suffix}" in names
    assert not any(n.endswith(".c") for n in names)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel.name.startswith(f"ivig_cds-{ivig_cds.__version__}-{tag}-{tag}-")


def test_metadata_declares_what_is_tested(wheel: Path) -> None:
    """Requires-Python and the classifiers name 3.11 to 3.13, the Pythons .ci/run tests."""
    archive = zipfile.ZipFile(wheel)
    (metadata,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    headers = email.parser.HeaderParser().parsestr(archive.read(metadata).decode())
    assert headers["Requires-Python"] == "<3.14,>=3.11"
    assert headers["License-Expression"] == "Apache-2.0"
    versions = sorted(
        c.rsplit(" ", 1)[1]
        for c in headers.get_all("Classifier") or []
        if c.startswith("Programming Language :: Python :: 3.")
    )
    assert versions == ["3.11", "3.12", "3.13"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "for version in 3.11 3.13; do" in ci


def test_tested_constraints_satisfy_the_declared_dependencies() -> None:
    """Each pinned version in .ci/constraints.txt lies inside pyproject's range for it, and
    every runtime dependency is pinned there: CI tests what users may install."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(spec)
        pinned = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned), (spec, pinned)
        upper = [s for s in requirement.specifier if s.operator in ("<", "<=", "==")]
        if requirement.name in ("fastapi", "starlette", "pydantic", "fhir.resources", "typer"):
            assert upper, f"{requirement.name} has no upper bound"


def test_installed_wheel_writes_the_report(wheel: Path, tmp_path: Path) -> None:
    """Unpacked wheel, run from an unrelated folder: the report renders from packaged templates."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r});"
        "from pathlib import Path; from ivig_cds import load_knowledge_base;"
        "from ivig_cds.report import write_site;"
        "print(len(write_site(load_knowledge_base(), Path('out'))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert int(run.stdout) > 40
    assert "Decision flow" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
