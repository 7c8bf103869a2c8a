"""Reading FHIR R4 JSON: resources parsed by the R4B models, Bundles and prefetch flattened.

`fhir.resources`' default is R5, which is not what R4 EHRs send, hence `R4B` throughout.
Malformed FHIR fails with a located message naming resources by type and id and fields by
path, never with a dump of the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel, ValidationError

from ivig_cds._errors import IvigCdsError
from ivig_cds._yaml import shorten

MAX_RESOURCES = 20_000  # far above a real chart; bounds the work one request can cause
MAX_PROBLEMS = 10


class FhirDataError(IvigCdsError, ValueError):
    """The FHIR input is invalid or contradicts itself; `problems` has one line per issue.

    Lines name resources by type and id and fields by path; they never quote patient data.
    """

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}unusable FHIR data ({len(self.problems)} {noun}):\n{lines}")


def resources_of(data: object) -> list[Resource]:
    """Parse `data` into R4B resources, flattening Bundles; see `patient_from_fhir`.

    Raises:
        FhirDataError: not a mapping, an unknown or malformed resource, an unsupported Bundle
            type, or more than `MAX_RESOURCES` resources.
    """
    if not isinstance(data, Mapping):
        raise FhirDataError([f"expected a JSON object, got {type(data).__name__}"])
    if "resourceType" in data:
        items: list[tuple[str, object]] = [("input", data)]
    else:
        items = [(f"prefetch '{short(str(k))}'", v) for k, v in data.items() if v is not None]
    problems: list[str] = []
    found: list[Resource] = []
    for where, raw in items:
        parsed = _parse(where, raw, problems)
        if parsed is None:
            continue
        if isinstance(parsed, Bundle):
            _unbundle(where, parsed, found, problems)
        elif parsed.get_resource_type() != "OperationOutcome":  # a prefetch the EHR could not do
            found.append(parsed)
        if len(found) > MAX_RESOURCES:
            raise FhirDataError([f"more than {MAX_RESOURCES} resources; send one patient's data"])
    if problems:
        raise FhirDataError(problems[:MAX_PROBLEMS] + _more(problems))
    return found


def _parse(where: str, raw: object, problems: list[str]) -> Resource | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a FHIR resource (a JSON object), got {_kind(raw)}")
        return None
    kind = raw.get("resourceType")
    if not isinstance(kind, str) or not kind:
        problems.append(f"{where}: no resourceType; is this FHIR JSON?")
        return None
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError, ImportError):
        problems.append(f"{where}: '{short(kind)}' is not a FHIR R4 resource type")
        return None
    return _validated(where, model, raw, problems)


def _validated(
    where: str, model: type[BaseModel], raw: Mapping[str, Any], problems: list[str]
) -> Resource | None:
    kind = raw["resourceType"]
    name = ref_of(kind, raw.get("id"))
    shape = _shape_problems(raw)
    if shape:
        problems.extend(f"{where}: {name}: {problem}" for problem in shape)
        return None
    try:
        resource = model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False)[:MAX_PROBLEMS]:
            loc = err["loc"]
            owner = name
            if kind == "Bundle" and len(loc) > 2 and loc[0] == "entry" and loc[2] == "resource":
                owner = f"{name} entry {loc[1]} ({_entry_ref(raw, loc[1])})"
                loc = loc[3:]
            path = ".".join(short(str(p)) for p in loc) or "resource"
            problems.append(f"{where}: {owner}: {path}: {_message(err['msg'])}")
        return None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        # fhir.resources raises these, not ValidationError, for some malformed nesting
        problems.append(f"{where}: {name}: is not FHIR R4 JSON the models can read")
        return None
    return resource  # type: ignore[return-value]  # every R4B resource model is a Resource


def _shape_problems(raw: Mapping[Any, Any]) -> list[str]:
    """What FHIR JSON forbids and the R4B models crash on or let through instead of reporting:
    keys that are not text, nested resources of no known type, and `null` inside a list (JSON
    allows it only in a primitive array that has a `_name` partner holding its extensions)."""
    problems: list[str] = []
    stack: list[tuple[object, str]] = [(raw, "")]
    while stack and len(problems) < MAX_PROBLEMS:
        value, path = stack.pop()
        children: list[tuple[object, str]] = []
        if isinstance(value, Mapping):
            for key, child in value.items():
                if not isinstance(key, str):
                    problems.append(f"{path or 'resource'}: keys must be text")
                    continue
                at = f"{path}.{short(key)}" if path else short(key)
                if key == "resourceType" and path and not _is_resource_type(child):
                    shown = short(child) if isinstance(child, str) else _kind(child)
                    problems.append(f"{at}: '{shown}' is not a FHIR R4 resource type")
                partner = key[1:] if key.startswith("_") else f"_{key}"
                if isinstance(child, list | tuple) and partner not in value and None in child:
                    problems.append(f"{at}.{child.index(None)}: null is not allowed in a list")
                children.append((child, at))
        elif isinstance(value, list | tuple):
            children = [(item, f"{path}.{i}") for i, item in enumerate(value)]
        stack.extend(reversed(children))
    return problems


def _is_resource_type(kind: object) -> bool:
    if not isinstance(kind, str) or not kind:
        return False
    try:
        get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError, ImportError):
        return False
    return True


def _entry_ref(bundle: Mapping[str, Any], index: object) -> str:
    entries = bundle.get("entry")
    if isinstance(entries, list) and isinstance(index, int) and 0 <= index < len(entries):
        entry = entries[index]
        item = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(item, Mapping):
            return ref_of(str(item.get("resourceType", "resource")), item.get("id"))
    return "resource"


def _unbundle(where: str, bundle: Bundle, found: list[Resource], problems: list[str]) -> None:
    if bundle.type not in ("searchset", "collection"):
        problems.append(
            f"{where}: Bundle type '{short(str(bundle.type))}' is not supported; "
            "send a searchset or collection Bundle"
        )
        return
    for entry in bundle.entry or ():
        resource = entry.resource
        if resource is None or (entry.search is not None and entry.search.mode == "outcome"):
            continue
        if isinstance(resource, Bundle):
            problems.append(f"{where}: nested Bundles are not supported")
            continue
        if resource.get_resource_type() != "OperationOutcome":
            found.append(resource)


_FHIR_STRING = "String should match pattern '[ \r\n\t\\S]+'"  # R4's string: one character at least
_ESCAPES = str.maketrans({"\r": "\\r", "\n": "\\n", "\t": "\\t"})


def _message(msg: str) -> str:
    """pydantic's message on one line: a pattern can hold line breaks, which would split a
    problem over lines of the report."""
    if msg == _FHIR_STRING:
        return "an empty string; a FHIR string holds at least one character (omit the element)"
    return msg.removeprefix("Value error, ").translate(_ESCAPES)


def _more(problems: list[str]) -> list[str]:
    extra = len(problems) - MAX_PROBLEMS
    return [f"... and {extra} more"] if extra > 0 else []


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def short(text: str) -> str:
    return shorten(text)  # at most 60 characters, on one line


def ref_of(kind: str, rid: object) -> str:
    """`Type/id`, or `Type (no id)`."""
    return f"{kind}/{short(str(rid))}" if isinstance(rid, str) and rid else f"{kind} (no id)"


def ref(resource: Resource) -> str:
    """`Type/id` of a resource, for messages and provenance."""
    return ref_of(resource.get_resource_type(), resource.id)
