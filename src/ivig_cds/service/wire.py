"""The CDS Hooks 2.0 request bodies, parsed leniently where real clients differ from the spec.

Unknown keys are ignored in hook calls (clients add their own) and kept in feedback; values are
never echoed in errors (`hide_input_in_errors`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Coding", "Feedback", "FeedbackRequest", "FhirAuthorization", "HookRequest"]


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")

    access_token: str = Field(min_length=1, max_length=10_000)
    token_type: str = Field(min_length=1, max_length=40)
    expires_in: int | None = None
    scope: str | None = Field(default=None, max_length=10_000)
    subject: str | None = Field(default=None, max_length=1000)


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    hook: str = Field(min_length=1, max_length=100)
    hookInstance: str = Field(min_length=1, max_length=100)  # noqa: N815 (the wire name)
    fhirServer: str | None = Field(default=None, max_length=2000)  # noqa: N815
    fhirAuthorization: FhirAuthorization | None = None  # noqa: N815
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class Coding(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    system: str | None = Field(default=None, max_length=2000)
    code: str | None = Field(default=None, max_length=200)
    display: str | None = Field(default=None, max_length=2000)


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=10_000)  # noqa: N815


class Feedback(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    card: str = Field(min_length=1, max_length=100)
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: str = Field(min_length=1, max_length=100)  # noqa: N815
    acceptedSuggestions: list[dict[str, Any]] | None = Field(default=None, max_length=100)  # noqa: N815
    overrideReason: OverrideReason | None = None  # noqa: N815


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    feedback: list[Feedback] = Field(min_length=1, max_length=100)
