"""The code tables of the FHIR adapter, read from `fhir/codes/*.yaml` shipped in the package.

Codes are data, not code: each entry names its system, code, display, the value it maps to
within its group, and where it was verified. This module only knows which groups exist and
which values each may take, so that a mistyped value fails when the tables load.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic import StringConstraints as Str

from ivig_cds._errors import IvigCdsError
from ivig_cds._yaml import YamlProblem, parse_yaml

if TYPE_CHECKING:
    from ivig_cds.fhir._site_maps import SiteMaps

# The groups the mapping reads, with the values an entry of each may map to.
GROUP_VALUES: Mapping[str, frozenset[str]] = {
    "ms_diagnosis": frozenset({"CIS", "RRMS", "SPMS", "PPMS", "unspecified"}),
    "ms_relapse": frozenset({"relapse"}),
    "thromboembolic_risk": frozenset({"venous_thromboembolism", "thrombophilia"}),
    "observation_kind": frozenset({"pregnancy_status", "breastfeeding", "edss", "due_date"}),
    "pregnancy_answer": frozenset({"pregnant", "not_pregnant", "unknown"}),
    "breastfeeding_answer": frozenset({"yes", "no"}),
    "medication": frozenset(
        {"interferon_beta", "glatiramer_acetate", "other_dmt", "methylprednisolone", "ivig"}
    ),
    "route": frozenset({"intravenous"}),
    "stop_reason": frozenset({"not_tolerated", "ineffective"}),
    "delivery": frozenset({"delivery"}),
    "other_indication": frozenset({"other_indication"}),
}

# ICD-10 and its national modifications: codes compare without their dot and case ("G35A" is
# G35.A), and a five-character ICD-10-GM code belongs to its four-character parent.
ICD10_SYSTEMS = frozenset(
    {
        "http://hl7.org/fhir/sid/icd-10",
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://fhir.de/CodeSystem/bfarm/icd-10-gm",
        "http://fhir.de/CodeSystem/dimdi/icd-10-gm",
    }
)
_ICD10_GM = (
    "http://fhir.de/CodeSystem/bfarm/icd-10-gm",
    "http://fhir.de/CodeSystem/dimdi/icd-10-gm",
)

_Text = Annotated[str, Str(strip_whitespace=True, min_length=1, max_length=2000)]


class FhirCodeTableError(IvigCdsError):
    """A file in `fhir_codes/` is invalid; the message names the file and the entry."""


class CodeEntry(BaseModel):
    """One code, what it means to the engine, and where it was verified."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: Annotated[str, Str(pattern=r"^(https?|urn):\S+$")]
    code: Annotated[str, Str(min_length=1, max_length=64, pattern=r"^\S+$")]
    display: _Text
    value: _Text
    verified: _Text


class SiteCodeEntry(CodeEntry):
    """A code from a site code map (`--codes FILE`); `verified` names the file and line."""

    group: str
    site_file: str
    line: int | None = None
    column: int | None = None


class CodeGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: _Text
    codes: tuple[CodeEntry, ...] = Field(default=())


class CodeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: dict[str, CodeGroup]

    @model_validator(mode="after")
    def _known(self) -> CodeFile:
        problems = []
        for name, group in self.groups.items():
            allowed = GROUP_VALUES.get(name)
            if allowed is None:
                problems.append(f"unknown group '{name}'; known: {', '.join(sorted(GROUP_VALUES))}")
                continue
            for entry in group.codes:
                if entry.value not in allowed:
                    problems.append(
                        f"{name}: code {entry.code} maps to '{entry.value}', "
                        f"which is not one of {', '.join(sorted(allowed))}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class CodeTables:
    """Every group of every code file, indexed by (system, code) for lookup.

    `site_maps` names the site code maps merged in (`with_site_maps`), None for the shipped
    tables alone.
    """

    def __init__(self, files: Mapping[str, CodeFile]) -> None:
        self._index: dict[str, dict[tuple[str, str], CodeEntry]] = {g: {} for g in GROUP_VALUES}
        self._tables: dict[tuple[str, str, str], str] = {}
        self.site_maps: SiteMaps | None = None
        for source, code_file in sorted(files.items()):
            for name, group in code_file.groups.items():
                index = self._index[name]
                for entry in group.codes:
                    key = (entry.system, normal_code(entry.system, entry.code))
                    if key in index:
                        raise FhirCodeTableError(
                            f"{source}: {name}: {entry.system}|{entry.code} is listed twice; "
                            "keep one entry"
                        )
                    index[key] = entry
                    self._tables[(name, *key)] = source

    def lookup(self, group: str, system: str | None, code: str | None) -> CodeEntry | None:
        """The entry of `group` for `system|code`, or None; see `ICD10_SYSTEMS`."""
        if system is None or code is None:
            return None
        index = self._index[group]
        key = normal_code(system, code)
        found = index.get((system, key))
        if found is None and system in _ICD10_GM and len(key) == 5:
            found = index.get((system, key[:4]))
        return found

    def entries(self, group: str) -> Iterator[CodeEntry]:
        yield from self._index[group].values()

    def meaning(self, system: str, code: str) -> tuple[str, CodeEntry] | None:
        """The group and entry that hold exactly `system|code` (no ICD-10-GM parent), if any."""
        key = (system, normal_code(system, code))
        for group, index in self._index.items():
            if key in index:
                return group, index[key]
        return None

    def provenance(self, group: str, entry: CodeEntry) -> str:
        """Where an entry comes from: its site map's file and line, or the shipped table and
        the source it was verified against."""
        if isinstance(entry, SiteCodeEntry):
            return entry.verified
        return f"shipped table {self.table(group, entry)}, verified against: {entry.verified}"

    def table(self, group: str, entry: CodeEntry) -> str | None:
        """The shipped file (`conditions.yaml`...) that holds `entry`; None for a site code."""
        if isinstance(entry, SiteCodeEntry):
            return None
        return self._tables.get((group, entry.system, normal_code(entry.system, entry.code)))

    def with_site_maps(self, site_maps: SiteMaps) -> CodeTables:
        """These tables with the codes of `site_maps` added (`load_site_maps` has checked
        them against the shipped tables); a code these tables already give the same concept
        keeps its shipped entry.

        Raises:
            FhirCodeTableError: a site code means something else in these tables.
        """
        merged = CodeTables({})
        merged._index = {g: dict(index) for g, index in self._index.items()}
        merged._tables = dict(self._tables)
        merged.site_maps = site_maps
        for entry in site_maps.entries:
            known = merged.meaning(entry.system, entry.code)
            if known is None:
                key = (entry.system, normal_code(entry.system, entry.code))
                merged._index[entry.group][key] = entry
            elif (known[0], known[1].value) != (entry.group, entry.value):
                raise FhirCodeTableError(
                    f"{entry.verified}: {entry.system}|{entry.code} is "
                    f"{known[0]}/{known[1].value} in the code tables, not "
                    f"{entry.group}/{entry.value}"
                )
        return merged


def normal_code(system: str, code: str) -> str:
    """`code` as the tables compare it."""
    # ICD-10 codes are case-insensitive in practice ("g35.a") and often sent without the dot
    # ("G35A"); other systems compare exactly.
    code = code.strip()
    return code.upper().replace(".", "") if system in ICD10_SYSTEMS else code


def load_code_tables(folder: str | Path | None = None) -> CodeTables:
    """Read and validate every `*.yaml` in `folder` (default: the shipped `fhir/codes/`).

    Raises:
        FhirCodeTableError: a file is not valid YAML, breaks the schema, or repeats a code.
    """
    shipped = Path(str(resources.files("ivig_cds.fhir"))) / "codes"
    where = Path(folder) if folder is not None else shipped
    files: dict[str, CodeFile] = {}
    for path in sorted(where.glob("*.yaml")):
        try:
            document = parse_yaml(path.read_bytes())
            files[path.name] = CodeFile.model_validate(document.data)
        except YamlProblem as exc:
            line = f":{exc.line}" if exc.line else ""
            raise FhirCodeTableError(f"{path.name}{line}: {exc.message}") from None
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise FhirCodeTableError(f"{path.name}: {details}") from None
    if not files:
        raise FhirCodeTableError(f"no code tables (*.yaml) found in {where}")
    return CodeTables(files)


@functools.cache
def default_code_tables() -> CodeTables:
    """The shipped code tables, read once."""
    return load_code_tables()
