"""The example patients in examples/ against their golden files in examples/expected/.

Each valid example (a YAML file directly in examples/, one per case) must print exactly
examples/expected/<name>.json with `--format json` and <name>.md with `--format markdown`, and so
must its JSON twin, if it has one, in tests/fixtures/json-patients/; each
invalid one (examples/invalid/) must fail with exit code 1 and print exactly
examples/expected/invalid/<file>.txt on standard error. examples/patients.ndjson holds every
valid example as one JSON line, for `ivig-cds batch`. The tests never rewrite a golden file.
After an intended change (a rule's text, a renderer), regenerate them and review the diff:

    python -m tests.test_examples --update
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivig_cds import KnowledgeBase
from ivig_cds._yaml import parse_yaml
from ivig_cds.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PATIENTS = EXAMPLES
INVALID = EXAMPLES / "invalid"
EXPECTED = EXAMPLES / "expected"
UPDATE_COMMAND = "python -m tests.test_examples --update"

JSON_TWINS = ROOT / "tests" / "fixtures" / "json-patients"
NDJSON = EXAMPLES / "patients.ndjson"

VALID_FILES = sorted(p for p in PATIENTS.iterdir() if p.suffix in (".yaml", ".json"))
TWIN_FILES = sorted(JSON_TWINS.glob("*.json"))
INVALID_FILES = sorted(p for p in INVALID.iterdir() if p.suffix in (".yaml", ".json"))
FORMATS = {"json": ".json", "markdown": ".md"}


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _golden(path: Path, output_format: str) -> Path:
    return EXPECTED / f"{path.stem}{FORMATS[output_format]}"


def _invalid_golden(path: Path) -> Path:
    return EXPECTED / "invalid" / f"{path.name}.txt"


def _run(*args: str) -> tuple[int, str, str]:
    """The command line as a user runs it from the repository root (paths relative to it)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _differs(golden: Path) -> str:
    return f"{_relative(golden)} differs from the output; if intended, run `{UPDATE_COMMAND}`"


@pytest.fixture(autouse=True)
def _at_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("path", VALID_FILES + TWIN_FILES, ids=lambda p: p.name)
def test_example_matches_golden(path: Path, output_format: str) -> None:
    """A valid example, or its JSON twin, evaluates (exit 0, nothing on stderr) to exactly its
    golden output."""
    golden = _golden(path, output_format)
    assert golden.is_file(), f"no golden file {_relative(golden)}; run `{UPDATE_COMMAND}`"
    code, out, err = _run("evaluate", "--format", output_format, _relative(path))
    assert (code, err) == (0, "")
    assert out == golden.read_text(encoding="utf-8"), _differs(golden)


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.name)
def test_invalid_example_matches_golden(path: Path) -> None:
    """An invalid example exits 1, prints nothing on stdout and exactly its golden error."""
    golden = _invalid_golden(path)
    assert golden.is_file(), f"no golden file {_relative(golden)}; run `{UPDATE_COMMAND}`"
    code, out, err = _run("evaluate", "--format", "json", _relative(path))
    assert (code, out) == (1, "")
    assert err == golden.read_text(encoding="utf-8"), _differs(golden)
    assert _relative(path) in err and "line " in err


def test_invalid_examples_cover_the_documented_mistakes() -> None:
    """The invalid examples show a contradiction, an out-of-range EDSS, a typo and bad syntax."""
    errors = {p.name: _invalid_golden(p).read_text(encoding="utf-8") for p in INVALID_FILES}
    assert "contradicts sex 'male'" in errors["male-pregnant.yaml"]
    assert "edss: Input should be less than or equal to 10 (got 11)" in errors["edss-11.yaml"]
    assert "did you mean 'ms_phenotype'?" in errors["unknown-field.yaml"]
    assert "invalid YAML" in errors["malformed.yaml"]
    assert "line 4, column 15: invalid JSON: Expecting property name" in errors["malformed.json"]


def test_examples_are_in_one_format_and_json_twins_match_them() -> None:
    """examples/ holds each case once, in YAML; a JSON twin in the tests holds the same data."""
    assert [p.suffix for p in VALID_FILES] == [".yaml"] * len(VALID_FILES)
    examples = {p.stem for p in VALID_FILES}
    for twin in TWIN_FILES:
        assert twin.stem in examples, f"{_relative(twin)} has no example in examples/"
        from_yaml = parse_yaml((PATIENTS / f"{twin.stem}.yaml").read_bytes()).data
        assert json.loads(twin.read_text(encoding="utf-8")) == from_yaml, twin.stem
    for path in VALID_FILES:
        assert parse_yaml(path.read_bytes()).data["patient_id"] == f"example-{path.stem}"


def _ndjson() -> str:
    lines = [parse_yaml(p.read_bytes()).data for p in VALID_FILES]
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def test_patients_ndjson_holds_every_example_in_order() -> None:
    """examples/patients.ndjson is the examples, one JSON object per line, in file-name order."""
    assert NDJSON.read_text(encoding="utf-8") == _ndjson(), _differs(NDJSON)


def test_every_rule_has_an_example(kb: KnowledgeBase) -> None:
    """Across the examples, every conclusion sets a tier and every caution is attached."""
    primaries, cautions = set(), set()
    for path in VALID_FILES:
        result = json.loads(_golden(path, "json").read_text(encoding="utf-8"))
        primaries.add(result["primary_rule"])
        cautions.update(c["rule_id"] for c in result["cautions"])
        assert path.stem.startswith(result["primary_rule"].lower()) or path.stem.startswith("k")
    assert primaries == {r.id for r in kb.conclusions}
    assert cautions == {r.id for r in kb.cautions}


def test_no_stray_golden_files() -> None:
    """Every golden file belongs to an example, so a renamed example leaves nothing behind."""
    wanted = {_golden(p, f) for p in VALID_FILES for f in FORMATS}
    wanted |= {_invalid_golden(p) for p in INVALID_FILES}
    present = {p for p in EXPECTED.rglob("*") if p.is_file()}
    assert present == wanted


def test_examples_folder_is_the_readme_quickstart() -> None:
    """`ivig-cds evaluate examples/` evaluates every valid example and exits 0."""
    code, out, err = _run("evaluate", "examples/")
    assert (code, err) == (0, "")
    results = json.loads(out)
    assert [r["source"] for r in results] == [_relative(p) for p in VALID_FILES]
    assert all("recommendation" in r for r in results)


def update() -> None:
    """Rewrite every golden file from the current output (run from the repository root)."""
    os.chdir(ROOT)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        os.environ.pop(name, None)
    (EXPECTED / "invalid").mkdir(parents=True, exist_ok=True)
    for old in EXPECTED.rglob("*"):
        if old.is_file():
            old.unlink()
    for path in VALID_FILES:
        for output_format in FORMATS:
            code, out, err = _run("evaluate", "--format", output_format, _relative(path))
            if code != 0:
                raise SystemExit(f"{_relative(path)} failed (exit {code}):\n{err}")
            _golden(path, output_format).write_text(out, encoding="utf-8")
    NDJSON.write_text(_ndjson(), encoding="utf-8")
    for path in INVALID_FILES:
        code, _, err = _run("evaluate", "--format", "json", _relative(path))
        if code != 1:
            raise SystemExit(f"{_relative(path)} should be invalid but exited {code}")
        _invalid_golden(path).write_text(err, encoding="utf-8")
    print(f"rewrote the golden files in {_relative(EXPECTED)}; review them with `git diff`")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit(f"usage: {UPDATE_COMMAND}")
    update()


def test_every_example_path_the_readmes_name_exists() -> None:
    """README.md and examples/README.md only point at example files that are there."""
    named = set()
    for readme in (ROOT / "README.md", EXAMPLES / "README.md"):
        named |= set(re.findall(r"\bexamples/[\w./-]*[\w/]", readme.read_text(encoding="utf-8")))
    assert {"examples/patients.ndjson", "examples/fhir/spms-decade-history.json"} <= named
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"named in a README but not in the repository: {missing}"
