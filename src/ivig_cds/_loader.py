"""Read `rules/` and `evidence/` into a validated `KnowledgeBase`, or report every problem.

Each file is parsed with positions kept, validated by its pydantic model, then all files are
cross-checked together; problems from every stage are collected so that a knowledge engineer
sees them all in one run, each as `path:line:column: what is wrong`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from ivig_cds._checks import LocatedRule, cross_check, not_asked_problems
from ivig_cds._errors import KnowledgeBaseError, KnowledgeIssue
from ivig_cds._evidence import EvidenceEntry, Outcome, SeedSource
from ivig_cds._hints import did_you_mean
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._patient_input import short_repr
from ivig_cds._record_windows import RECORD_WINDOWS_NAME, load_record_windows
from ivig_cds._rules import (
    CautionRule,
    Certainty,
    ConclusionRule,
    Manifest,
    NotAsked,
    Passage,
    Provenance,
    Rule,
)
from ivig_cds._yaml import LocatedDocument, YamlProblem, parse_yaml, read_limited, shorten

MANIFEST_NAME = "knowledge-base.yaml"

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")
_QUOTED = 200  # a too-long summary is quoted whole; a megabyte title is not
_NESTED = (Certainty, Provenance, Passage, NotAsked, Outcome, SeedSource)
_RULE: TypeAdapter[ConclusionRule | CautionRule] = TypeAdapter(Rule)
_KNOWN_KEYS = sorted(
    {
        field.alias or name
        for model in (ConclusionRule, CautionRule, Manifest, EvidenceEntry, *_NESTED)
        for name, field in model.model_fields.items()
    }
)


def default_dirs() -> tuple[Path, Path]:
    """The shipped knowledge base: inside the installed wheel, or at the top of a checkout."""
    packaged = Path(str(resources.files("ivig_cds"))) / "_kb"
    if (packaged / "rules").is_dir():
        return packaged / "rules", packaged / "evidence"
    checkout = Path(__file__).resolve().parents[2]  # an editable install runs from src/
    return checkout / "rules", checkout / "evidence"


def load_knowledge_base(
    rules_dir: str | Path | None = None, evidence_dir: str | Path | None = None
) -> KnowledgeBase:
    """Load and validate a knowledge base.

    Args:
        rules_dir: folder of rule files with `knowledge-base.yaml` at its top; default: shipped.
        evidence_dir: folder of evidence files; default: the shipped registry.

    Raises:
        KnowledgeBaseError: listing every problem found, each with its file, line and column.
    """
    default_rules, default_evidence = default_dirs()
    rules_path = Path(rules_dir) if rules_dir is not None else default_rules
    evidence_path = Path(evidence_dir) if evidence_dir is not None else default_evidence
    issues: list[KnowledgeIssue] = []
    for folder, what in ((rules_path, "rules"), (evidence_path, "evidence")):
        if not folder.is_dir():
            issues.append(KnowledgeIssue(str(folder), None, None, f"{what} folder not found"))
    if issues:
        raise KnowledgeBaseError(issues)

    manifest_file = rules_path / MANIFEST_NAME
    not_rules = (manifest_file, rules_path / RECORD_WINDOWS_NAME)  # read by their own loaders
    rule_files = [f for f in _yaml_files(rules_path) if f not in not_rules]
    evidence_files = _yaml_files(evidence_path)

    manifest = None
    if manifest_file.is_file():
        manifest_doc = _read(manifest_file, issues)
        if manifest_doc is not None:
            manifest = _validate(manifest_file, manifest_doc, TypeAdapter(Manifest), issues)
        if manifest is not None and manifest_doc is not None:
            issues.extend(not_asked_problems(manifest, manifest_file, manifest_doc))
    else:
        issues.append(
            KnowledgeIssue(
                str(manifest_file), None, None, "missing; it names and versions the knowledge base"
            )
        )
    windows_file = rules_path / RECORD_WINDOWS_NAME
    if windows_file.is_file():  # optional; validated here so a broken one fails the whole load
        try:
            load_record_windows(windows_file)
        except KnowledgeBaseError as exc:
            issues.extend(exc.issues)
    rules = [
        LocatedRule(rule, path, doc) for rule, path, doc in _read_all(rule_files, _RULE, issues)
    ]
    evidence = _read_all(evidence_files, TypeAdapter(EvidenceEntry), issues)
    if not rule_files:
        issues.append(KnowledgeIssue(str(rules_path), None, None, "no rule files (*.yaml)"))
    if not evidence_files:
        issues.append(KnowledgeIssue(str(evidence_path), None, None, "no evidence files (*.yaml)"))

    # An entry that failed validation is still there: citing it is not a second error.
    valid = {p for _, p, _ in evidence}
    unusable = {p.stem for p in evidence_files if p not in valid}
    # Likewise a rule that failed: citing its id or leaving its evidence uncited is no error.
    read_rules = {r.path for r in rules}
    failed_ids, cited_by_failed = _salvage([f for f in rule_files if f not in read_rules])
    issues.extend(
        cross_check(
            rules,
            evidence,
            unusable_evidence=unusable,
            unusable_rules=failed_ids,
            cited_by_unusable=cited_by_failed,
        )
    )
    if issues or manifest is None:
        raise KnowledgeBaseError(issues)

    return KnowledgeBase(
        manifest=manifest,
        conclusions=tuple(
            sorted((r.rule for r in rules if isinstance(r.rule, ConclusionRule)), key=_natural)
        ),
        cautions=tuple(
            sorted((r.rule for r in rules if isinstance(r.rule, CautionRule)), key=_natural)
        ),
        evidence={e.id: e for e, _, _ in sorted(evidence, key=lambda item: item[0].id)},
        content_hash=_content_hash(
            manifest_file,
            [*rule_files, *([windows_file] if windows_file.is_file() else [])],
            evidence_files,
        ),
        rules_dir=rules_path,
        evidence_dir=evidence_path,
        sources={
            **{r.rule.id: r.path for r in rules},
            **{e.id: p for e, p, _ in evidence},
        },
    )


def _read_all(
    files: list[Path], adapter: TypeAdapter[_T], issues: list[KnowledgeIssue]
) -> list[tuple[_T, Path, LocatedDocument]]:
    read = []
    for path in files:
        doc = _read(path, issues)
        model = None if doc is None else _validate(path, doc, adapter, issues)
        if doc is not None and model is not None:
            read.append((model, path, doc))
    return read


def _salvage(failed: list[Path]) -> tuple[set[str], set[str] | None]:
    """The ids of rule files that failed (their `id`, else the file name up to its first '-')
    and the evidence they cite, or None for the latter when some file is unreadable."""
    ids: set[str] = set()
    cited: set[str] | None = set()
    for path in failed:
        try:
            data = parse_yaml(read_limited(path)).data
        except (OSError, YamlProblem):
            data = None
        if not isinstance(data, dict):
            ids.add(path.stem.split("-", 1)[0])
            cited = None
            continue
        ids.add(data["id"] if isinstance(data.get("id"), str) else path.stem.split("-", 1)[0])
        evidence = data.get("evidence", [])
        if cited is not None and isinstance(evidence, list):
            cited.update(e for e in evidence if isinstance(e, str))
        else:
            cited = None
    return ids, cited


def _natural(rule: ConclusionRule | CautionRule) -> tuple[str, int, str]:
    """K2 before K10, C03a before C03b: the order people number rules in."""
    found = re.match(r"([A-Z])([0-9]+)(.*)", rule.id)
    return (found.group(1), int(found.group(2)), found.group(3)) if found else (rule.id, 0, "")


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _content_hash(manifest: Path, rules: Iterable[Path], evidence: Iterable[Path]) -> str:
    """sha256 over every file's name and bytes: two knowledge bases with one hash say the same."""
    digest = hashlib.sha256()
    for root_name, files in (("rules", [manifest, *rules]), ("evidence", list(evidence))):
        for path in files:
            digest.update(f"{root_name}/{path.name}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def _read(path: Path, issues: list[KnowledgeIssue]) -> LocatedDocument | None:
    try:
        doc = parse_yaml(read_limited(path))
    except OSError as exc:
        issues.append(KnowledgeIssue(str(path), None, None, f"cannot be read: {exc.strerror}"))
        return None
    except YamlProblem as exc:
        issues.append(KnowledgeIssue(str(path), exc.line, exc.column, exc.message))
        return None
    if not isinstance(doc.data, dict):
        line, column = doc.marks.get((), (None, None))
        issues.append(
            KnowledgeIssue(
                str(path), line, column, f"expected a mapping at the top, got {_kind(doc.data)}"
            )
        )
        return None
    return doc


def _validate(
    path: Path, doc: LocatedDocument, adapter: TypeAdapter[_T], issues: list[KnowledgeIssue]
) -> _T | None:
    try:
        return adapter.validate_python(doc.data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if p not in ("conclusion", "caution"))
            line, column = doc.locate(loc) or (None, None)
            issues.append(KnowledgeIssue(str(path), line, column, _explain(loc, err)))
        return None


def _explain(loc: tuple[int | str, ...], err: Any) -> str:
    where = ".".join(shorten(str(p)) for p in loc) or "file"
    kind = err["type"]
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind == "extra_forbidden":
        return f"{where}: unknown field{did_you_mean(str(loc[-1]), _KNOWN_KEYS)}"
    message = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    if kind == "enum" and isinstance(got, str):
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",")]
        return f"{where}: {message}; got {short_repr(got, _QUOTED)}{did_you_mean(got, options)}"
    if isinstance(got, str | int | float | bool):
        return f"{where}: {message}; got {short_repr(got, _QUOTED)}"
    return f"{where}: {message}"


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"
