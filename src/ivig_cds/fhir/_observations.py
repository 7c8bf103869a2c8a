"""Observations and procedures: pregnancy, delivery (weeks postpartum), breastfeeding, EDSS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.procedure import Procedure

from ivig_cds.fhir._parse import ref
from ivig_cds.fhir._record import Dated, Record, date_of

# How long each answer counts is knowledge-base data (rules/record-windows.yaml, with reasons):
# record.windows.


def read_pregnancy_and_lactation(record: Record) -> None:
    """Set `pregnancy_status`, `weeks_postpartum` and `breastfeeding` from current answers."""
    windows = record.windows
    status = _current(
        record,
        "pregnancy_status",
        "pregnancy_answer",
        {"pregnant": windows.pregnant.weeks, "not_pregnant": windows.not_pregnant.weeks},
    )
    status = _before_due_date(record, status)
    delivery = _delivery(record)
    male = record.facts.get("sex") == "male"
    values = {d.value for d in status}
    refs = [d.source for d in status]
    if len(values) > 1:
        record.conflict(
            "pregnancy_status",
            refs,
            f"pregnancy status conflict: {', '.join(sorted(refs))} give different answers "
            "on the same date",
        )
        values = set()
    observed = values.pop() if values else None
    observed_on = status[0].when if status else None
    if delivery is not None and (
        observed != "pregnant" or (observed_on is not None and observed_on <= delivery.when)  # type: ignore[operator]
    ):
        weeks = (record.as_of - delivery.when).days // 7  # type: ignore[operator]
        if male:
            _male_conflict(record, "pregnancy_status", delivery.source, "records a delivery")
        else:
            record.set("pregnancy_status", "postpartum", [delivery.source])
            record.set("weeks_postpartum", weeks, [delivery.source])
    elif observed is not None:
        if male and observed == "pregnant":
            _male_conflict(record, "pregnancy_status", refs[0], "records a pregnancy")
        else:
            record.set("pregnancy_status", observed, refs)
    weeks = windows.breastfeeding.weeks
    feeding = _current(record, "breastfeeding", "breastfeeding_answer", {"yes": weeks, "no": weeks})
    answers = {d.value for d in feeding}
    feeding_refs = [d.source for d in feeding]
    if len(answers) > 1:
        record.conflict(
            "breastfeeding",
            feeding_refs,
            f"breastfeeding conflict: {', '.join(sorted(feeding_refs))} give different "
            "answers on the same date",
        )
    elif answers:
        value = answers.pop() == "yes"
        if male and value:
            _male_conflict(record, "breastfeeding", feeding_refs[0], "records breastfeeding")
        else:
            record.set("breastfeeding", value, feeding_refs)


def read_edss(record: Record) -> None:
    """Set `edss` from the latest valid score."""
    scores: list[Dated] = []
    for observation in _observations(record, "edss"):
        quantity = observation.valueQuantity
        value = (
            float(quantity.value) if quantity is not None and quantity.value is not None else None
        )
        if value is None or not 0 <= value <= 10 or (value * 2) % 1:
            record.notes.append(
                f"{ref(observation)}: not an EDSS score from 0 to 10 in steps of 0.5"
            )
            continue
        when = date_of(observation.effectiveDateTime, observation.issued)
        scores.append(Dated(value, when, ref(observation)))
    dated = [s for s in scores if s.when is not None]
    if dated:
        latest = max(dated, key=lambda s: s.when)  # type: ignore[arg-type, return-value]
        same_day = {s.value for s in dated if s.when == latest.when}
        if len(same_day) == 1:
            record.set("edss", latest.value, [latest.source])
        else:
            record.conflict(
                "edss",
                [s.source for s in dated if s.when == latest.when],
                "EDSS conflict: different scores recorded on the same date",
            )


def _observations(record: Record, kind: str) -> Iterator[Observation]:
    for observation in record.of(Observation):
        if observation.status not in ("final", "amended", "corrected"):
            continue
        if any(e.value == kind for e in record.match("observation_kind", [observation.code])):
            yield observation


def _current(record: Record, kind: str, answers: str, weeks_for: dict[str, int]) -> list[Dated]:
    """The latest answers to an Observation kind, each within its own window of weeks before
    the evaluation date (a negative answer ages faster than a positive one)."""
    dated: list[Dated] = []
    for observation in _observations(record, kind):
        name = ref(observation)
        values = {e.value for e in record.match(answers, [observation.valueCodeableConcept])}
        if not values:
            record.unmapped.append(name)
            continue
        when = date_of(
            observation.effectiveDateTime,
            observation.effectivePeriod.end if observation.effectivePeriod else None,
            observation.effectivePeriod.start if observation.effectivePeriod else None,
            observation.effectiveInstant,
            observation.issued,
        )
        if when is None or when > record.as_of:
            record.notes.append(f"{name}: no usable effective date; not used")
            continue
        for value in sorted(str(v) for v in values if v != "unknown"):
            weeks = weeks_for[value]
            if (record.as_of - when).days > weeks * 7:
                record.notes.append(
                    f"{name}: a '{value.replace('_', ' ')}' answer older than {weeks} weeks; "
                    "not used"
                )
            else:
                dated.append(Dated(value, when, name))
    if not dated:
        return []
    latest = max(d.when for d in dated if d.when is not None)
    return [d for d in dated if d.when == latest]


def _before_due_date(record: Record, status: list[Dated]) -> list[Dated]:
    """Drop a 'pregnant' answer once the recorded due date (LOINC 11778-8) has passed."""
    if not any(d.value == "pregnant" for d in status):
        return status
    due: Dated | None = None
    for observation in _observations(record, "due_date"):
        value = date_of(observation.valueDateTime)
        recorded = date_of(observation.effectiveDateTime, observation.issued) or value
        if value is None:
            record.notes.append(f"{ref(observation)}: due date without a date value; not used")
            continue
        if due is None or (recorded, value) > (due.when, due.value):
            due = Dated(value, recorded, ref(observation))
    if due is None or not isinstance(due.value, dt.date) or due.value >= record.as_of:
        return status
    kept = []
    for answer in status:
        if answer.value == "pregnant" and answer.when is not None and answer.when <= due.value:
            record.notes.append(
                f"{answer.source}: 'pregnant' answer not used after the due date recorded in "
                f"{due.source}"
            )
        else:
            kept.append(answer)
    return kept


def _male_conflict(record: Record, name: str, source: str, what: str) -> None:
    patient = record.sources.get("sex", ("Patient",))[0]
    record.conflict(name, [patient, source], f"{patient} is male but {source} {what}")


def _delivery(record: Record) -> Dated | None:
    latest: Dated | None = None
    for procedure in record.of(Procedure):
        if procedure.status != "completed":
            continue
        if not record.match("delivery", [procedure.code]):
            continue
        name = ref(procedure)
        when = date_of(
            procedure.performedDateTime,
            procedure.performedPeriod.end if procedure.performedPeriod else None,
            procedure.performedPeriod.start if procedure.performedPeriod else None,
        )
        if when is None or when > record.as_of:
            record.notes.append(f"{name}: delivery without a usable date; not used")
            continue
        if (record.as_of - when).days > record.windows.postpartum.weeks * 7:
            continue  # an old delivery says nothing about now
        if latest is None or when > latest.when:  # type: ignore[operator]
            latest = Dated("delivery", when, name)
    return latest
