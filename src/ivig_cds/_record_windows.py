"""How long an answer in a patient's record keeps counting: knowledge-base data, not code.

`rules/record-windows.yaml` gives each window in weeks with the reason for it, so that the
figures are reviewed like rules and shown by `ivig-cds rules` and `validate`. The FHIR adapter
reads them; the rule engine does not (the rules bound clinical periods themselves, e.g. C10's
postpartum weeks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic import StringConstraints as Str

from ivig_cds._errors import KnowledgeBaseError, KnowledgeIssue
from ivig_cds._yaml import YamlProblem, parse_yaml, read_limited, shorten

RECORD_WINDOWS_NAME = "record-windows.yaml"


class Window(BaseModel):
    """A number of weeks and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weeks: Annotated[int, Field(ge=1, le=104)]
    reason: Annotated[str, Str(strip_whitespace=True, min_length=20, max_length=2000)]


class RecordWindows(BaseModel):
    """The windows the FHIR adapter applies to dated answers in a record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pregnant: Window = Field(description="A 'pregnant' answer counts this long.")
    not_pregnant: Window = Field(description="A 'not pregnant' answer counts this long.")
    breastfeeding: Window = Field(description="A breastfeeding answer counts this long.")
    postpartum: Window = Field(description="Weeks since a delivery are reported this long.")
    ivig_in_use: Window | None = Field(
        default=None,
        description="IVIG given (or an order for it ended) this recently counts as IVIG in "
        "use. A knowledge base without it (before 3.0.0) does not read IVIG in use from "
        "records, so that older releases still load and can be compared with `diff`.",
    )

    def rows(self) -> list[tuple[str, Window]]:
        """(name, window) in file order, for display; windows not given are left out."""
        found = ((name, getattr(self, name)) for name in type(self).model_fields)
        return [(name, window) for name, window in found if window is not None]


def load_record_windows(path: str | Path) -> RecordWindows:
    """Read and validate a record-windows file.

    Raises:
        KnowledgeBaseError: the file cannot be read, is not YAML, or breaks the schema; each
            issue carries the file's line and column.
    """
    path = Path(path)
    try:
        doc = parse_yaml(read_limited(path))
    except OSError as exc:
        raise KnowledgeBaseError(
            [KnowledgeIssue(str(path), None, None, f"cannot be read: {exc.strerror}")]
        ) from None
    except YamlProblem as exc:
        raise KnowledgeBaseError(
            [KnowledgeIssue(str(path), exc.line, exc.column, exc.message)]
        ) from None
    data = doc.data.get("windows") if isinstance(doc.data, dict) else None
    if not isinstance(doc.data, dict) or set(doc.data) != {"windows"}:
        raise KnowledgeBaseError(
            [KnowledgeIssue(str(path), 1, 1, "expected one top-level key, 'windows'")]
        )
    try:
        return RecordWindows.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = ("windows", *err["loc"])
            line, column = doc.locate(loc) or (None, None)
            where = ".".join(shorten(str(p)) for p in loc)
            message = (
                "required field is missing"
                if err["type"] == "missing"
                else "unknown field"
                if err["type"] == "extra_forbidden"
                else str(err["msg"])
            )
            issues.append(KnowledgeIssue(str(path), line, column, f"{where}: {message}"))
        raise KnowledgeBaseError(issues) from None
