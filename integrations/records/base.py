"""The record (EHR / aesthetic record) seen from the ledger: one `RecordAdapter` per practice.

Outbound, an adapter writes what the ledger says onto the chart: the patient link, the membership
(tier, status), the entitlement summary (balances, last refill, rollover rule) and the chart flag
(card declined, paused, cancelled). Inbound, it checks a webhook's signature and turns the record's
payload into our dataclasses (`TreatmentCompleted`, `AppointmentBooked`, `AppointmentCancelled`);
the ledger reacts to those and knows no vendor.

Adapters raise `RecordUnavailable` (5xx, timeout, connection refused: retry later) and
`RecordRejected` (4xx: the record said no; retrying would not help). The outbox destination maps
them onto its retryable / permanent delivery errors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from memberships.models import Location, Member, Practice
from memberships.services.common import MAX_QUANTITY  # units or cents in one record event, as in the API

SIGNATURE_HEADER = "X-Medspa-Signature"
PRACTICE_HEADER = "X-Medspa-Practice"


class RecordError(Exception):
    pass


class RecordUnavailable(RecordError):
    """The record could not be reached or failed (5xx, timeout): try again later."""


class RecordRejected(RecordError):
    """The record refused the request (4xx): a business outcome, not retried."""


class WebhookRejected(RecordError):
    """An inbound webhook failed verification or is malformed; `code` goes back in the JSON answer."""

    def __init__(self, message: str, *, code: str = "invalid_signature", status: int = 401):
        super().__init__(message)
        self.code, self.status = code, status


# --- what the ledger writes --------------------------------------------------------------------


@dataclass(frozen=True)
class MembershipState:
    membership_id: int
    tier_code: str
    tier_name: str
    status: str  # MembershipStatus value
    status_display: str
    started_at: datetime
    current_period_start: datetime | None
    current_period_end: datetime | None
    paused_until: str | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True)
class EntitlementLine:
    service_code: str
    service_name: str
    kind: str  # "treatment" (units) or "credit" (cents)
    balance: int
    reserved: int
    available: int
    per_cycle: int | None
    rollover: str  # RolloverRule value, or "" when the tier no longer includes it
    rollover_in_words: str
    frozen: bool


@dataclass(frozen=True)
class EntitlementSummary:
    membership_id: int
    currency: str
    last_refill_at: datetime | None
    cycle_number: int
    lines: tuple[EntitlementLine, ...] = ()


@dataclass(frozen=True)
class ChartFlag:
    """The alert the chart shows. `reason`: card_declined / paused / cancelled / other."""

    reason: str
    text: str
    since: datetime


@dataclass(frozen=True)
class MemberState:
    """Everything the chart panel shows for one member, as the ledger has it now."""

    membership: MembershipState | None
    summary: EntitlementSummary | None
    flag: ChartFlag | None  # None: no flag should be active


# --- what the record tells us -----------------------------------------------------------------




@dataclass(frozen=True)
class RecordEvent:
    """`quantity` is a whole number from 1 to MAX_QUANTITY, checked when an adapter's parser builds
    the event (ValueError otherwise): a larger number is no treatment, and would not fit the ledger's
    columns. `quantity_stated`: the record said how many (else 1 is assumed, and a completed treatment
    commits its hold as booked)."""

    appointment_id: str
    patient_id: str = ""
    member_number: str = ""
    service_code: str = ""
    quantity: int = 1
    occurred_at: datetime | None = None
    quantity_stated: bool = True
    type: str = field(default="", init=False)

    def __post_init__(self):
        if not valid_quantity(self.quantity):
            raise ValueError(f"quantity must be a whole number from 1 to {MAX_QUANTITY}")


def valid_quantity(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_QUANTITY


@dataclass(frozen=True)
class AppointmentBooked(RecordEvent):
    type: str = field(default="appointment.booked", init=False)


@dataclass(frozen=True)
class AppointmentCancelled(RecordEvent):
    reason: str = "cancelled"  # or "no_show"
    type: str = field(default="appointment.cancelled", init=False)


@dataclass(frozen=True)
class TreatmentCompleted(RecordEvent):
    type: str = field(default="treatment.completed", init=False)


OUTCOMES = ("booked", "completed", "cancelled", "no_show")


def appointment_event(outcome: str, **fields) -> RecordEvent:
    """Our event for what the record says became of an appointment: `booked`, `completed`,
    `cancelled` or `no_show` (the last two release a hold alike; the reason is kept)."""
    if outcome == "booked":
        return AppointmentBooked(**fields)
    if outcome == "completed":
        return TreatmentCompleted(**fields)
    if outcome in ("cancelled", "no_show"):
        return AppointmentCancelled(**fields, reason=outcome)
    raise ValueError(f"unknown appointment outcome {outcome!r}")


@dataclass(frozen=True)
class InboundWebhook:
    """A verified webhook, ready to be stored: what the inbox keeps and dedupes on."""

    practice: Practice
    event_id: str
    event_type: str
    payload: dict[str, Any]
    location: Location | None = None     # a location's own record sent it


class RecordAdapter(Protocol):
    name: str
    practice: Practice

    # outbound
    def link_patient(self, member: Member) -> str: ...

    def write_membership(self, member: Member, state: MembershipState) -> dict: ...

    def write_entitlement_summary(self, member: Member, summary: EntitlementSummary) -> dict: ...

    def set_chart_flag(self, member: Member, flag: ChartFlag) -> dict: ...

    def clear_chart_flag(self, member: Member, *, now: datetime) -> dict: ...

    def sync_member(self, member: Member, state: MemberState, *, event_ref: str, now: datetime) -> dict: ...

    def read_patient_snapshot(self, member: Member) -> dict | None: ...

    # inbound
    def verify_webhook(self, request, *, body: bytes) -> InboundWebhook: ...

    def parse_webhook(self, payload: dict[str, Any]) -> list[RecordEvent]: ...


class BaseAdapter:
    """Shared behaviour: `sync_member` writes the parts in order (patient, membership, summary,
    flag); each part is idempotent, so a retried delivery converges instead of doubling."""

    name = "base"

    def __init__(self, practice: Practice, location: Location | None = None):
        self.practice = practice
        self.location = location     # set when the location runs its own record: its config applies
        self.config: dict[str, Any] = dict((location or practice).record_config or {})

    @property
    def webhook_secret(self) -> str:
        """What verifies this record's webhooks and signs what it is sent: a location's own record has
        its own (`Location.record_webhook_secret`; none set, nothing verifies), never the practice's."""
        return (self.location or self.practice).record_webhook_secret

    def link_patient(self, member: Member) -> str:
        return member.record_patient_id

    def sync_member(self, member: Member, state: MemberState, *, event_ref: str, now: datetime) -> dict:
        result: dict[str, Any] = {"patient_id": self.link_patient(member)}
        if state.membership is not None:
            result["membership"] = self.write_membership(member, state.membership)
        if state.summary is not None:
            result["summary"] = self.write_entitlement_summary(member, state.summary)
        if state.flag is not None:
            result["flag"] = self.set_chart_flag(member, state.flag)
        else:
            result["flag"] = self.clear_chart_flag(member, now=now)
        return result

    def read_patient_snapshot(self, member: Member) -> dict | None:
        return None

    def parse_webhook(self, payload: dict[str, Any]) -> list[RecordEvent]:
        return []

    def inbound_webhook(self, *, event_id: str, event_type: str, payload: dict[str, Any]) -> InboundWebhook:
        """A verified webhook of this practice, ready for the inbox (ids cut to the columns' sizes)."""
        return InboundWebhook(practice=self.practice, event_id=event_id[:200], event_type=event_type[:100],
                              payload=payload, location=self.location)


def read_json(body: bytes) -> dict[str, Any]:
    """A webhook body as a JSON object, else WebhookRejected (400)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("The body is not JSON.", code="invalid_json", status=400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("The body must be a JSON object.", code="invalid_json", status=400)
    return payload


def sign(body: bytes, secret: str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the raw body with the record's webhook secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, secret: str, header: str) -> bool:
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(body, secret), header.strip())


def tokens_match(given: str, secret: str) -> bool:
    return bool(secret) and bool(given) and hmac.compare_digest(given.encode(), secret.encode())
