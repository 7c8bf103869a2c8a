"""Valid patient contexts (consistent by construction): hypothesis strategies and a seeded mix."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from ivig_cds import (
    FirstLineStatus,
    IntendedUse,
    MSPhenotype,
    PregnancyStatus,
    Sex,
)

FIRST_LINE_CLASS_FIELDS = ("interferon_beta", "glatiramer_acetate")


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def patients(draw: st.DrawFn) -> dict[str, Any]:
    """Any patient the validator accepts, as a plain mapping with unknowns left out."""
    sex = draw(_maybe(st.sampled_from([s.value for s in Sex])))
    pregnancy = draw(_maybe(st.sampled_from([p.value for p in PregnancyStatus])))
    if sex == "male" and pregnancy in ("pregnant", "postpartum"):
        pregnancy = "not_pregnant"
    relapse = draw(_maybe(st.booleans()))
    use = draw(_maybe(st.sampled_from([u.value for u in IntendedUse])))
    if use == "acute_relapse" and relapse is False:
        relapse = None
    steroids = draw(_maybe(st.booleans()))
    if steroids and relapse is False:
        steroids = None
    statuses = [f.value for f in FirstLineStatus]
    by_class = draw(
        _maybe(
            st.fixed_dictionaries(
                {}, optional={c: st.sampled_from(statuses) for c in FIRST_LINE_CLASS_FIELDS}
            )
        )
    )
    whole = draw(_maybe(st.sampled_from(statuses)))
    if by_class is not None and whole is not None:
        whole = None  # a given whole may contradict the classes; the classes alone always agree
    data: dict[str, Any] = {
        "ms_phenotype": draw(_maybe(st.sampled_from([m.value for m in MSPhenotype]))),
        "intended_use": use,
        "acute_relapse": relapse,
        "on_iv_methylprednisolone": steroids,
        "first_line_dmt": whole,
        "first_line_by_class": by_class,
        "pregnancy_status": pregnancy,
        "weeks_postpartum": (
            draw(_maybe(st.integers(0, 104))) if pregnancy == "postpartum" else None
        ),
        "breastfeeding": draw(_maybe(st.booleans())) if sex != "male" else None,
        "thromboembolic_risk_factors": draw(
            _maybe(st.lists(st.sampled_from(["obesity", "previous DVT", "smoking"]), max_size=3))
        ),
        "other_dmt_in_use": draw(_maybe(st.booleans())),
        "ivig_in_use": draw(_maybe(st.booleans())),
        "edss": draw(_maybe(st.integers(0, 20).map(lambda i: i / 2))),
        "age_years": draw(_maybe(st.integers(0, 100))),
        "sex": sex,
        "patient_id": draw(_maybe(st.text("abcdef0123456789-", min_size=1, max_size=12))),
    }
    return {k: v for k, v in data.items() if v is not None}


def mixed_patients(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """`n` valid patients drawn with a seeded RNG: fast and repeatable, for stress and benchmarks.

    Every field is sometimes unknown, so every rule, caution and missing-data path is reached.
    """
    rng = random.Random(seed)

    def pick(values: Sequence[Any]) -> Any:
        return rng.choice([*values, None])

    out = []
    for i in range(n):
        sex = pick([s.value for s in Sex])
        pregnancy = pick([p.value for p in PregnancyStatus])
        if sex == "male" and pregnancy in ("pregnant", "postpartum"):
            pregnancy = "not_pregnant"
        relapse = pick([True, False])
        use = pick([u.value for u in IntendedUse])
        if use == "acute_relapse" and relapse is False:
            relapse = True
        steroids = pick([True, False])
        if steroids and relapse is False:
            steroids = None
        by_class = None
        whole = pick([f.value for f in FirstLineStatus])
        if rng.random() < 0.3:
            by_class = {
                c: pick([f.value for f in FirstLineStatus]) for c in FIRST_LINE_CLASS_FIELDS
            }
            by_class = {c: v for c, v in by_class.items() if v is not None}
            whole = None
        data = {
            "patient_id": f"mix-{seed}-{i}",
            "ms_phenotype": pick([m.value for m in MSPhenotype]),
            "intended_use": use,
            "acute_relapse": relapse,
            "on_iv_methylprednisolone": steroids,
            "first_line_dmt": whole,
            "first_line_by_class": by_class,
            "pregnancy_status": pregnancy,
            "weeks_postpartum": pick(range(0, 105)) if pregnancy == "postpartum" else None,
            "breastfeeding": pick([True, False]) if sex != "male" else None,
            "thromboembolic_risk_factors": pick([[], ["obesity"], ["previous DVT", "smoking"]]),
            "other_dmt_in_use": pick([True, False]),
            "ivig_in_use": pick([True, False]),
            "edss": pick([i / 2 for i in range(21)]),
            "age_years": pick(range(8, 90)),
            "sex": sex,
        }
        out.append({k: v for k, v in data.items() if v is not None})
    return out
