"""Fuzzing `ivig-cds evaluate` with malformed files: exit 0 or 1, never a traceback.

Random bytes, broken YAML and JSON, mutated example files and FHIR prefetch go through the
command line (typer's CliRunner, and a real process once). A bad file gives exit code 1 and an
`error: FILE: what` line on standard error, with line and field where the file says where.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import subprocess
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from ivig_cds._yaml import YamlProblem, parse_yaml
from ivig_cds.cli import app
from ivig_cds.cli.patient_files import MAX_FHIR_BYTES, MAX_PATIENT_BYTES
from ivig_cds.fhir import FhirDataError, evaluate_fhir
from tests.fuzz_strategies import (
    FIELDS,
    json_junk,
    junk,
    mutated_bytes,
    value_paths,
    yaml_texts,
)
from tests.strategies import patients
from tests.test_fuzz_api import _LINE as PROBLEM_LINE

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml")) + sorted(
    (REPO / "tests" / "fixtures" / "json-patients").glob("*.json")
)
PREFETCH = json.loads(
    (REPO / "examples" / "cds-hooks" / "rrms-interferon-intolerant.json").read_text()
)["prefetch"]
SUMMARIES = (
    "cannot be read",
    "is not a valid YAML file",
    "is not valid JSON",
    "is not a valid patient context",
    "is a FHIR Bundle, not a patient context",
    "is a CDS Hooks request, not a patient context",
    "is not a FHIR Bundle",
    "is not a usable FHIR Bundle",
    "is a patient file, not a FHIR record",
    "is a CDS Hooks request, not a FHIR Bundle",
)
_LOCATED = re.compile(r"^line \d+, column \d+: ")

FUZZ = settings(
    max_examples=70,
    deadline=timedelta(seconds=10),  # a 64 KiB worst-case file parses in about a second
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FUZZ, max_examples=2_000)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cli")


def run(*args: str | Path, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def assert_clean(result: Result, source: str) -> None:
    """Exit 0 with a recommendation (beside how the record was read, for FHIR), or exit 1 with
    `error: SOURCE: summary` and problems."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"an exception escaped the command line:\n{trace}")
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 0:
        document = json.loads(result.stdout)
        assert "tier" in document.get("recommendation", document)
        assert result.stderr == ""
        return
    head, *details = result.stderr.removesuffix("\n").split("\n")
    assert head in {f"error: {source}: {summary}" for summary in SUMMARIES}, result.stderr
    assert details, result.stderr
    for line in details:
        assert line.startswith("  - "), result.stderr
        if head.endswith("is not a valid patient context"):
            problem = _LOCATED.sub("", line.removeprefix("  - "))
            assert PROBLEM_LINE.match(problem), problem


def evaluate_bytes(
    workdir: Path, raw: bytes, *, suffix: str = ".yaml", fhir: bool = False
) -> Result:
    path = workdir / f"patient{suffix}"
    path.write_bytes(raw)
    result = run("evaluate", "--format", "json", *(["--fhir"] if fhir else []), path)
    assert_clean(result, str(path))
    return result


@FUZZ
@given(raw=st.binary(max_size=400))
def test_random_bytes(workdir: Path, raw: bytes) -> None:
    """Arbitrary bytes as a patient file."""
    evaluate_bytes(workdir, raw)


@FUZZ
@given(text=yaml_texts())
def test_yaml_with_odd_constructs(workdir: Path, text: str) -> None:
    """Valid patient lines mixed with tags, constants, aliases, bad dates and noise."""
    evaluate_bytes(workdir, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.sampled_from(EXAMPLES).flatmap(lambda p: mutated_bytes(p.read_bytes())), st.booleans())
def test_mutated_example_files(workdir: Path, raw: bytes, as_json: bool) -> None:
    """The shipped example patients, truncated or with bytes flipped, inserted or deleted."""
    evaluate_bytes(workdir, raw, suffix=".json" if as_json else ".yaml")


@FUZZ
@given(data=json_junk | patients().map(lambda p: {**p, "edss": float("nan")}))
def test_json_documents_with_nan_and_infinity(workdir: Path, data: Any) -> None:
    """Any JSON value, as Python writes it (NaN, Infinity), as a patient file."""
    evaluate_bytes(workdir, json.dumps(data).encode(), suffix=".json")


@FUZZ
@given(data=junk)
def test_standard_input_with_junk(data: Any) -> None:
    """Junk on standard input, named <stdin> in the error."""
    try:
        raw = repr(data).encode("utf-8", "surrogatepass")
    except ValueError:  # an integer too long to print
        raw = b"age_years: " + b"9" * 5000
    assert_clean(run("evaluate", "--format", "json", "-", stdin=raw), "<stdin>")


PREFETCH_PATHS = value_paths(PREFETCH)[1:]


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    changed = copy.deepcopy(document)
    parent = changed
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return changed


@FUZZ
@given(path=st.sampled_from(PREFETCH_PATHS), value=json_junk)
def test_fhir_prefetch_with_one_element_replaced(
    workdir: Path, path: tuple[Any, ...], value: Any
) -> None:
    """`evaluate --fhir` on the example's prefetch with any one element replaced by junk."""
    raw = json.dumps(replaced(PREFETCH, path, value)).encode()
    evaluate_bytes(workdir, raw, suffix=".json", fhir=True)


@FUZZ
@given(path=st.sampled_from(PREFETCH_PATHS), value=junk)
def test_fhir_api_with_python_junk(path: tuple[Any, ...], value: Any) -> None:
    """evaluate_fhir with any Python value spliced in raises only FhirDataError."""
    try:
        evaluate_fhir(replaced(PREFETCH, path, value), as_of=dt.date(2024, 6, 1))
    except FhirDataError as exc:
        assert exc.problems and all(p for p in exc.problems)


@pytest.mark.slow
@SLOW
@given(raw=st.binary(max_size=2000) | yaml_texts().map(str.encode))
def test_random_files_at_length(workdir: Path, raw: bytes) -> None:
    """Random bytes and odd YAML at 2,000 examples (run with --slow)."""
    evaluate_bytes(workdir, raw)


# --- fixed cases: exact messages --------------------------------------------------------------


def stderr_of(workdir: Path, raw: bytes, suffix: str = ".yaml") -> str:
    result = evaluate_bytes(workdir, raw, suffix=suffix)
    assert result.exit_code == 1
    return result.stderr.split("\n", 1)[1]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "file is empty; expected a mapping"),
        (b"\xef\xbb\xbf", "file is empty; expected a mapping"),
        (b"# nothing but a comment\n", "file is empty; expected a mapping"),
        (b"sex: f\xe9male\n", "file is not UTF-8 text (bad byte at offset 6)"),
        ("sex: female".encode("utf-16"), "file is not UTF-8 text (bad byte at offset 0)"),
        (
            b"a: &a [lol, lol]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n",
            "line 2, column 8: YAML aliases (*name) are not allowed; write the value out",
        ),
        (
            b"sex: female\n---\nsex: male\n",
            "line 2, column 1: the file holds more than one YAML document (each '---' starts "
            "one); expected exactly one",
        ),
        (
            b"patient_id: !!python/object/apply:os.system [echo hi]\n",
            "line 1, column 13: invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        # these escaped as ValueError, AttributeError, KeyError, TypeError or ReaderError
        (
            b"ms_phenotype: RRMS\nage_years: 2024-13-01\n",
            "line 2, column 12: invalid YAML: the value is not a valid date (month must be in "
            "1..12)",
        ),
        (
            b"age_years: " + b"9" * 5000 + b"\n",
            "line 1, column 12: invalid YAML: the integer has too many digits (at most 4300)",
        ),
        (b"age_years: !!int 4x\n", "line 1, column 12: invalid YAML: the value is not an integer"),
        (b"edss: !!float abc\n", "line 1, column 7: invalid YAML: the value is not a number"),
        (
            b"acute_relapse: !!bool maybe\n",
            "line 1, column 16: invalid YAML: the value is not true or false",
        ),
        (
            b"sex: !!timestamp soon\n",
            "line 1, column 6: invalid YAML: the value is not a date (year-month-day)",
        ),
        (
            b"sex: !!map [female]\n",
            "line 1, column 6: invalid YAML: expected a mapping node, but found sequence",
        ),
        (
            b"sex: female\npatient_id: a\x00b\n",
            "line 2, column 14: invalid YAML: control character #x0000 is not allowed in YAML text",
        ),
        (b"[" * 2_000, "invalid YAML: nesting is too deep"),
        (b"? [a, b]\n: 1\n", "line 1, column 3: mapping keys must be plain scalars"),
    ],
)
def test_unreadable_files_are_named_and_located(workdir: Path, raw: bytes, problem: str) -> None:
    """Each unreadable file gives exactly this located problem, naming the file above it."""
    assert stderr_of(workdir, raw) == f"  - {problem}\n"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"edss: .nan\n", "line 1, column 1: edss: Input should be a finite number (got nan)"),
        (b"edss: -.inf\n", "line 1, column 1: edss: Input should be a finite number (got -inf)"),
        (b'{"edss": NaN}', "line 1, column 2: edss: Input should be a valid number (got 'NaN')"),
        (
            b'{"edss": Infinity}',
            "line 1, column 2: edss: Input should be a valid number (got 'Infinity')",
        ),
        (
            b"age_years: 0x" + b"f" * 5000 + b"\n",
            "line 1, column 1: age_years: Input should be less than or equal to 130 "
            "(got an integer of about 6020 digits)",
        ),
        (
            b"1: male\n",
            "line 1, column 1: 1: unknown field; field names are text, like 'edss'",
        ),
        (
            b"patient_id: !!binary /w==\n",
            "line 1, column 1: patient_id: Input should be a valid string, unable to parse raw "
            "data as a unicode string (got b'\\xff')",
        ),
        (
            b"sex: " + b"[" * 150 + b"]" * 150 + b"\n",
            "line 1, column 1: sex: nested more than 100 levels deep (got a list)",
        ),
    ],
)
def test_odd_values_are_reported_at_their_field(workdir: Path, raw: bytes, problem: str) -> None:
    """YAML and JSON constants and odd values reach validation and are named by field."""
    assert stderr_of(workdir, raw) == f"  - {problem}\n"


def test_oversized_file_is_refused_without_reading_it_whole(workdir: Path) -> None:
    """A patient file over 64 KiB is refused (a 1 MiB flow list took 13 s to parse)."""
    raw = b"thromboembolic_risk_factors: [" + b"1," * MAX_PATIENT_BYTES + b"1]\n"
    assert stderr_of(workdir, raw) == "  - file is larger than 64 KiB\n"


def test_endless_file_is_refused_not_read_forever() -> None:
    """/dev/zero was read whole (forever); now only up to the limit."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    result = run("evaluate", "--format", "json", "/dev/zero")
    assert_clean(result, "/dev/zero")
    assert result.stderr.endswith("  - file is larger than 64 KiB\n")


class _EndlessStdin:
    """Standard input that never ends, counting what was read from it."""

    def __init__(self) -> None:
        self.taken = 0

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "standard input must be read with a bound"
        self.taken += size
        return b"#" * size


def test_endless_standard_input_is_refused_not_read_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`evaluate -` reads at most one byte past the largest accepted input, then refuses it."""
    endless = _EndlessStdin()
    monkeypatch.setattr("typer.get_binary_stream", lambda name: endless)
    result = run("evaluate", "--format", "json", "-")
    assert_clean(result, "<stdin>")
    assert result.stderr.endswith("  - file is larger than 64 KiB\n")
    assert endless.taken == MAX_FHIR_BYTES + 1


def test_a_fhir_bundle_may_be_larger_than_a_patient_file(workdir: Path) -> None:
    """Real bundles are big: up to 1 MiB is read (the service's limit), beyond it refused."""
    padded = (REPO / "tests" / "fixtures" / "fhir" / "rrms-interferon-intolerant.json").read_bytes()
    padded += b" " * (MAX_PATIENT_BYTES * 2)
    path = workdir / "big-bundle.json"
    path.write_bytes(padded)
    result = run("evaluate", "--fhir", "--format", "json", path)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["recommendation"]["tier"] == "second_line"
    path.write_bytes(padded + b" " * MAX_FHIR_BYTES)
    result = run("evaluate", "--fhir", "--format", "json", path)
    assert result.exit_code == 1
    assert result.stderr.endswith("  - file is larger than 1024 KiB\n")


def test_unreadable_file_gives_the_system_reason(workdir: Path) -> None:
    """A file that cannot be opened is named with the operating system's reason."""
    folder = workdir / "a-directory.yaml"
    folder.mkdir(exist_ok=True)
    result = run("evaluate", "--format", "json", folder / "missing.yaml")
    assert result.exit_code == 2  # a path that does not exist is a usage error
    assert "does not exist" in result.output


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        # an entry or a coding of null crashed with AttributeError in the mapping
        (
            ("conditions", "entry", 0),
            None,
            "prefetch 'conditions': Bundle (no id): entry.0: null is not allowed in a list",
        ),
        (
            ("conditions", "entry", 0, "resource", "code", "coding", 0),
            None,
            "prefetch 'conditions': Bundle (no id): entry.0.resource.code.coding.0: null is not "
            "allowed in a list",
        ),
        # a nested resource of unknown or non-text type crashed inside fhir.resources
        (
            ("conditions", "entry", 0, "resource", "resourceType"),
            "Conditoin",
            "prefetch 'conditions': Bundle (no id): entry.0.resource.resourceType: 'Conditoin' "
            "is not a FHIR R4 resource type",
        ),
        (
            ("conditions", "entry", 0, "resource", "resourceType"),
            ["Condition"],
            "prefetch 'conditions': Bundle (no id): entry.0.resource.resourceType: 'list' "
            "is not a FHIR R4 resource type",
        ),
    ],
)
def test_fhir_shape_errors_are_located(path: tuple[Any, ...], value: Any, problem: str) -> None:
    """FHIR JSON with nulls in lists or bad nested resource types gives a located problem."""
    with pytest.raises(FhirDataError) as caught:
        evaluate_fhir(replaced(PREFETCH, path, value), as_of=dt.date(2024, 6, 1))
    assert caught.value.problems == [problem]


def test_fhir_keys_must_be_text(workdir: Path) -> None:
    """A YAML 'FHIR' file with a non-text key crashed fhir.resources ('keywords must be
    strings'); now it is named."""
    raw = b"resourceType: Patient\nid: p1\ngender: female\nname: [{1: x}]\n"
    result = evaluate_bytes(workdir, raw, fhir=True)
    assert result.exit_code == 1
    assert "input: Patient/p1: name.0: keys must be text" in result.stderr


def test_json_escaped_characters_beyond_the_basic_plane_are_read(workdir: Path) -> None:
    """json.dumps writes U+1F600 as a surrogate pair, which PyYAML read as two lone surrogates:
    the patient id was refused as invalid text."""
    raw = json.dumps({"patient_id": "p-\U0001f600", "ms_phenotype": "RRMS"}).encode()
    assert b"\\ud83d\\ude00" in raw
    result = evaluate_bytes(workdir, raw, suffix=".json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["patient_id"] == "p-\U0001f600"


def test_unpaired_surrogate_key_is_named(workdir: Path) -> None:
    """A key that is not valid text stopped pydantic with a message naming no field."""
    raw = b'{"\\ud800": 1, "sex": "x"}'
    assert stderr_of(workdir, raw, suffix=".json") == (
        "  - line 1, column 2: '\\ud800': unknown field; the name is not valid text\n"
        "  - line 1, column 15: sex: Input should be 'female', 'male' or 'other' (got 'x')\n"
    )


def test_control_characters_in_fhir_keys_stay_on_one_line(workdir: Path) -> None:
    """A key with a newline is escaped in the problem line, which stays one line."""
    data = replaced(PREFETCH, ("patient", "identifier", 0), {"a\nb\x1e": None})
    result = evaluate_bytes(workdir, json.dumps(data).encode(), suffix=".json", fhir=True)
    assert result.exit_code == 1
    assert "identifier.0.a\\nb\\x1e: Extra inputs are not permitted" in result.stderr


def test_parse_yaml_keeps_a_bom_out_of_the_first_key() -> None:
    """A UTF-8 byte-order mark is not part of the first field's name."""
    assert parse_yaml(b"\xef\xbb\xbfsex: female\n").data == {"sex": "female"}
    with pytest.raises(YamlProblem, match="empty"):
        parse_yaml(b"\xef\xbb\xbf\n")


# --- privacy ---------------------------------------------------------------------------------

SENTINELS = {
    "patient_id": "SENTINEL-ID-7731",
    "thromboembolic_risk_factors": ["SENTINEL-RF-4410"],
}


@FUZZ
@given(bad_field=st.sampled_from([f for f in FIELDS if f not in SENTINELS]), bad=json_junk)
def test_cli_errors_never_quote_another_field(workdir: Path, bad_field: str, bad: Any) -> None:
    """With identifiers in two fields and one bad field, the output names neither identifier."""
    data = {"ms_phenotype": "RRMS", **SENTINELS, bad_field: bad}
    result = evaluate_bytes(workdir, json.dumps(data).encode(), suffix=".json")
    if result.exit_code == 1:
        assert "SENTINEL" not in result.output


def test_a_bad_risk_factor_is_quoted_alone(workdir: Path) -> None:
    """The one bad value may be quoted (shortened); the identifier next to it is not."""
    data = {**SENTINELS, "thromboembolic_risk_factors": ["SENTINEL-RF-4410", ""]}
    result = evaluate_bytes(workdir, json.dumps(data).encode(), suffix=".json")
    assert result.exit_code == 1
    assert "thromboembolic_risk_factors.1: String should have at least 1 character" in (
        result.stderr
    )
    assert "SENTINEL" not in result.output


# --- a real process ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00", b"a: &x 1\nb: *x\n", b"age_years: 2024-02-30\n", b"sex: \x07\n"],
    ids=["utf16", "alias", "bad-date", "control-char"],
)
def test_installed_script_reports_bad_files_without_traceback(tmp_path: Path, raw: bytes) -> None:
    """The console script itself: exit 1, one error naming the file, no traceback."""
    script = Path(sys.executable).with_name("ivig-cds")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    done = subprocess.run(
        [str(script), "evaluate", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith(f"error: {path}: is not a valid YAML file\n  - ")
