"""The CDS services this package offers, one per hook, as discovery lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SERVICES", "Service"]


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    hook: Literal["patient-view", "order-select", "order-sign"]
    title: str
    description: str


SERVICES: tuple[Service, ...] = (
    Service(
        "ivig-ms-patient-view",
        "patient-view",
        "IVIG in multiple sclerosis",
        "When a chart with multiple sclerosis opens: does IVIG have a role for this patient, "
        "and on what evidence?",
    ),
    Service(
        "ivig-ms-order-select",
        "order-select",
        "IVIG order check in multiple sclerosis",
        "When IVIG is selected for a patient with multiple sclerosis: what the evidence says.",
    ),
    Service(
        "ivig-ms-order-sign",
        "order-sign",
        "IVIG order check in multiple sclerosis",
        "Before an IVIG order is signed for a patient with multiple sclerosis: what the "
        "evidence says.",
    ),
)
