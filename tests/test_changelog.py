"""The CHANGELOG's example answers are what the engine answers: the clinician's words are checked.

Each row of a release's "Example answers" table names a patient (YAML) and, in that release's
column, the answer in a small fixed vocabulary: the deciding rule and its tier, then claims
separated by commas ("C07 listed", "C01 not listed", "K13 ...", "very low certainty", "asks for
thrombotic risk factors").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ivig_cds import Evaluator, Recommendation, Tier
from ivig_cds.cli import app
from tests.strategies import mixed_patients

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"
RELEASE = "3.0.0"
TIERS = {
    "second-line option": Tier.SECOND_LINE,
    "not first line": Tier.NOT_FIRST_LINE,
    "insufficient evidence": Tier.INSUFFICIENT_EVIDENCE,
    "not recommended": Tier.NOT_RECOMMENDED,
    "indeterminate": Tier.INDETERMINATE,
    "outside the evidence": Tier.OUTSIDE_EVIDENCE,
    "not applicable": Tier.NOT_APPLICABLE,
}
ASKS = {"thrombotic risk factors": "thromboembolic_risk_factors", "age": "age_years"}


def _rows() -> list[tuple[str, str, str]]:
    text = CHANGELOG.read_text(encoding="utf-8")
    section = text.split(f"## Knowledge base {RELEASE}", 1)[1].split("\n## ", 1)[0]
    table = section.split("### Example answers", 1)[1]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows.append((cells[0], cells[1].strip("`"), cells[3]))
    return rows


ROWS = _rows()


def test_the_release_has_example_answers() -> None:
    """The current release's CHANGELOG section carries a table of example answers."""
    assert len(ROWS) >= 8


def _check(claim: str, result: Recommendation) -> None:
    fired = {f.rule_id for f in result.findings}
    secondary = {f.rule_id for f in result.findings if f.role == "secondary"}
    cautions = {c.rule_id for c in result.cautions}
    if m := re.fullmatch(r"(C\d+[a-z]?) not listed", claim):
        assert m.group(1) not in fired
    elif m := re.fullmatch(r"(C\d+[a-z]?) listed", claim):
        assert m.group(1) in secondary
    elif m := re.match(r"(K\d+[a-z]?)\b", claim):
        assert m.group(1) in cautions
    elif m := re.fullmatch(r"asks for (.+)", claim):
        assert ASKS[m.group(1)] in result.missing_data
    elif m := re.fullmatch(r"(high|moderate|low|very low) certainty", claim):
        assert result.certainty is not None
        assert result.certainty.level.value == m.group(1).replace(" ", "_")
    else:
        pytest.fail(f"the CHANGELOG claim {claim!r} is not in the checked vocabulary")


@pytest.mark.parametrize(("situation", "patient", "answer"), ROWS, ids=[r[0] for r in ROWS])
def test_changelog_example_is_what_the_engine_answers(
    evaluator: Evaluator, situation: str, patient: str, answer: str
) -> None:
    """The 3.0.0 column of each example row holds for its patient."""
    result = evaluator.evaluate(yaml.safe_load(patient))
    first, *claims = [part.strip() for part in answer.split(",")]
    rule, tier = first.split(" ", 1)
    assert result.primary_rule == rule, situation
    assert result.tier is TIERS[tier], situation
    for claim in claims:
        _check(claim, result)


DIFF_CLAIM = re.compile(
    r"Over (?:the )?([\d,]+) (example patients|generated patient contexts).*?: ([\d,]+) answers "
    r"change, ([\d,]+) of them in tier",
    re.S,
)
KB_2 = CHANGELOG.parent / "tests" / "fixtures" / "kb-2.0.0"


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_release_diff_counts_are_what_diff_finds(tmp_path: Path) -> None:
    """The counts the 3.0.0 entry gives for 2.0.0 → 3.0.0 (examples; 10,000 generated
    patients) are what `ivig-cds diff` finds today against the kept copy of 2.0.0."""
    section = CHANGELOG.read_text(encoding="utf-8").split(f"## Knowledge base {RELEASE}", 1)[1]
    claims = DIFF_CLAIM.findall(section.split("\n## ", 1)[0])
    assert [c[1] for c in claims] == ["example patients", "generated patient contexts"]
    population = tmp_path / "population.ndjson"
    population.write_text(
        "".join(json.dumps(p) + "\n" for p in mixed_patients(_number(claims[1][0]), seed=0)),
        encoding="utf-8",
    )
    root = CHANGELOG.parent
    for (compared, _, changed, in_tier), source in zip(
        claims, [root / "examples", population], strict=True
    ):
        result = CliRunner().invoke(
            app,
            ["diff", "--old-rules", str(KB_2 / "rules"), "--old-evidence", str(KB_2 / "evidence"),
             str(source), "--format", "json", "--workers", "1"],
        )  # fmt: skip
        assert result.exit_code == 3, result.stderr
        units = json.loads(result.stdout)["units"]["patient"]
        assert (units["compared"], units["changed"], units["tier_changed"]) == (
            _number(compared),
            _number(changed),
            _number(in_tier),
        )
