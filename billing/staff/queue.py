"""The dunning queue the manager works through: open cases, next action, amount at risk.

Built on the ledger while `billing.DunningCase` does not exist yet: a case is a past-due membership,
opened by its latest PAYMENT_FAILED / PAYMENT_ACTION_REQUIRED event, with the processor's invoice
mirror (billing.Invoice) for the amount, attempts and next retry when there is one. To switch to
DunningCase, make `open_dunning_cases` build its rows from the open cases instead; the page and
its tests only see `DunningRow`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import JSONField, OuterRef, Subquery

from billing.models import Invoice, InvoiceStatus
from memberships.models import Event, EventKind, Membership, MembershipStatus

FAILED_KINDS = [EventKind.PAYMENT_FAILED, EventKind.PAYMENT_ACTION_REQUIRED]
CONTACTED = "contacted"


@dataclass
class DunningRow:
    membership_id: int
    member_id: int
    member_name: str
    member_number: str
    phone: str
    email: str
    tier_name: str
    opened_at: datetime | None
    amount_at_risk_cents: int
    attempts: int
    hard_decline: bool
    action_required: bool
    next_retry_at: datetime | None
    contacted_at: datetime | None

    @property
    def next_action(self) -> str:
        if self.hard_decline:
            return "Ask for a new card (hard decline: no automatic retries)"
        if self.action_required:
            return "Ask the member to confirm the charge with their bank"
        if self.next_retry_at:
            return f"Automatic retry {self.next_retry_at:%b %d}"
        return "Ask for a new card (no retry scheduled)"


def open_dunning_cases(*, practice_id: int | None, now: datetime, limit: int = 500) -> list[DunningRow]:
    last_failure = (Event.objects.filter(membership_id=OuterRef("pk"), kind__in=FAILED_KINDS)
                    .order_by("-created_at", "-id"))
    last_contact = (Event.objects.filter(membership_id=OuterRef("pk"), kind=EventKind.NOTE,
                                         payload__dunning=CONTACTED).order_by("-created_at", "-id"))
    memberships = (
        Membership.objects.filter(status=MembershipStatus.PAST_DUE)
        .select_related("member", "tier")
        .annotate(
            failed_at=Subquery(last_failure.values("created_at")[:1]),
            failed_payload=Subquery(last_failure.values("payload")[:1], output_field=JSONField()),
            contacted_at=Subquery(last_contact.values("created_at")[:1]),
        )
        .order_by("updated_at", "id")
    )
    if practice_id is not None:
        memberships = memberships.filter(member__practice_id=practice_id)
    memberships = list(memberships[:limit])
    invoices: dict[int, Invoice] = {}
    for invoice in (Invoice.objects.filter(membership_id__in=[m.pk for m in memberships], status=InvoiceStatus.OPEN,
                                           failed_at__isnull=False).order_by("failed_at", "id")):
        invoices[invoice.membership_id] = invoice  # the latest failed invoice wins
    rows = []
    for m in memberships:
        payload = m.failed_payload or {}
        invoice = invoices.get(m.pk)
        if invoice is not None:
            amount, attempts = invoice.amount_cents, invoice.attempt_count
            hard, action, retry = invoice.hard_decline, invoice.action_required, invoice.next_payment_attempt
        else:
            amount = int(payload.get("amount_cents") or m.tier.price_cents)
            attempts = int(payload.get("attempt_count") or 1)
            hard, action, retry = bool(payload.get("hard")), bool(payload.get("action_required")), None
        rows.append(DunningRow(
            membership_id=m.pk, member_id=m.member_id, member_name=m.member.full_name,
            member_number=m.member.member_number, phone=m.member.phone, email=m.member.email,
            tier_name=m.tier.name, opened_at=m.failed_at or m.updated_at, amount_at_risk_cents=amount,
            attempts=attempts, hard_decline=hard, action_required=action,
            next_retry_at=retry if retry and retry > now else None, contacted_at=m.contacted_at,
        ))
    rows.sort(key=lambda r: (r.opened_at is None, r.opened_at))
    return rows
