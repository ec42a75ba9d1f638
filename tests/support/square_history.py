"""Square histories of one membership, built from the documented fixtures (tests/fixtures/square) in
the order Square emits them, for the convergence property (tests/integrations/test_square_convergence.py).

Square bills each monthly cycle on its first day with the card on file and does not retry: a cycle's
invoice is paid at once, or its charge fails (`invoice.scheduled_charge_failed`, the invoice stays
UNPAID) and the member may pay it later on its page (`invoice.payment_made`), or never. A history is
planned as its invoices — each failed first or not, then paid or not, an unpaid one perhaps cancelled
by the practice (the first always paid in the end: Square bills no renewal of a subscription never
paid) — and optionally the subscription cancelled at the end of its last cycle (`subscription.updated`,
status CANCELED):

    invoice k's cycle starts (T0 + k months)
      +1 min  invoice.scheduled_charge_failed      (a failed charge)
      +2 days invoice.payment_made, PARTIALLY_PAID (a part paid on its page; optional)
      +3 days invoice.payment_made                 (paid on its page) — or +1 min when nothing failed
      +4 days invoice.canceled                     (unpaid: the practice cancels it; optional)
    a day after the last event: subscription.updated CANCELED, canceled_date that day

Every event's `created_at` is strictly later than the one before. Ids carry the history's tag."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

from hypothesis import strategies as st

from integrations import inbox
from integrations.models import InboundEvent
from integrations.processors.square_events import add_months, envelope_of
from memberships import services
from memberships.models import Membership

from ..factories import MemberFactory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "square"
UTC = dt_timezone.utc
T0 = datetime(2026, 1, 5, tzinfo=UTC)
SOURCE = "square"


@dataclass(frozen=True)
class CyclePlan:
    failed: bool                # the scheduled charge failed first
    paid: bool                  # paid in the end (at once, or on the invoice's page after the failure)
    partial: bool = False       # after the failure, a part paid on the invoice's page first (the rest owed)
    forgiven: bool = False      # unpaid: the practice cancels the invoice at Square (CANCELED)


@dataclass(frozen=True)
class SquarePlan:
    invoices: tuple[CyclePlan, ...]
    cancelled: bool = False

    def __str__(self) -> str:
        parts = [f"inv{k + 1}:{'F' if c.failed else ''}{'p' if c.partial and c.failed else ''}"
                 f"{'P' if c.paid else 'X' if c.forgiven else '-'}" for k, c in enumerate(self.invoices)]
        return " ".join(parts + (["cancelled"] if self.cancelled else []))


@dataclass(frozen=True)
class SquareEvent:
    invoice: int | None
    label: str
    event: dict

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.event["created_at"].replace("Z", "+00:00"))


def square_plans(*, max_invoices: int = 4) -> st.SearchStrategy[SquarePlan]:
    cycle = st.builds(CyclePlan, failed=st.booleans(), paid=st.booleans(), partial=st.booleans(),
                      forgiven=st.booleans())
    first = st.builds(CyclePlan, failed=st.booleans(), paid=st.just(True), partial=st.booleans())
    return st.builds(lambda head, tail, cancelled: SquarePlan((head, *tail), cancelled),
                     first, st.lists(cycle, max_size=max_invoices - 1), st.booleans())


def cycle_start(k: int) -> datetime:
    return add_months(T0, k)


def invoice_ref(tag: str, k: int) -> str:
    return f"inv:0-{tag}-{k + 1}"


def subscription_ref(tag: str) -> str:
    return f"sub-{tag}"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _invoice_event(kind: str, *, tag: str, k: int, at: datetime, paid: bool, part: bool = False) -> dict:
    event = _fixture(f"{kind}.json")
    inv = event["data"]["object"]["invoice"]
    ref, start = invoice_ref(tag, k), cycle_start(k)
    request = inv["payment_requests"][0]
    amount = request["computed_amount_money"]["amount"]
    request.update(due_date=start.date().isoformat(),
                   total_completed_amount_money={"amount": amount // 2 if part else amount if paid else 0,
                                                 "currency": "USD"})
    if not paid and kind == "invoice.scheduled_charge_failed":
        request["automatic_payment_source"] = "NONE"        # what Square sets after a failed charge
    inv.update(id=ref, subscription_id=subscription_ref(tag), invoice_number=f"{k + 1:06d}",
               sale_or_service_date=start.date().isoformat(), created_at=_stamp(start), updated_at=_stamp(at),
               status="PARTIALLY_PAID" if part else "PAID" if paid else "UNPAID", version=2 if paid or part else 1,
               public_url=f"https://squareup.com/pay-invoice/{ref}")
    event["data"]["id"] = ref
    event["created_at"] = _stamp(at)
    return event


def _cancelled_invoice_event(*, tag: str, k: int, at: datetime, part: bool) -> dict:
    """`invoice.canceled`: the practice cancelled the unpaid (or part-paid) invoice; Square charges it no
    more (CANCELED, no automatic payment source)."""
    event = _invoice_event("invoice.canceled", tag=tag, k=k, at=at, paid=False, part=part)
    inv = event["data"]["object"]["invoice"]
    inv.update(status="CANCELED", version=3 if part else 2)
    inv["payment_requests"][0]["automatic_payment_source"] = "NONE"
    return event


def _cancelled_event(*, tag: str, at: datetime, through: datetime) -> dict:
    event = _fixture("subscription.updated.canceled.json")
    sub = event["data"]["object"]["subscription"]
    sub.update(id=subscription_ref(tag), canceled_date=at.date().isoformat(), start_date=T0.date().isoformat(),
               charged_through_date=through.date().isoformat(), created_at=_stamp(T0))
    event["data"]["id"] = sub["id"]
    event["created_at"] = _stamp(at)
    return event


def build_square_history(plan: SquarePlan, *, tag: str) -> list[SquareEvent]:
    out: list[SquareEvent] = []
    through = T0
    for k, cycle in enumerate(plan.invoices):
        start = cycle_start(k)
        if cycle.failed:
            out.append(SquareEvent(k, f"inv{k + 1}.failed", _invoice_event(
                "invoice.scheduled_charge_failed", tag=tag, k=k, at=start + timedelta(minutes=1), paid=False)))
            if cycle.partial:
                out.append(SquareEvent(k, f"inv{k + 1}.partly_paid", _invoice_event(
                    "invoice.payment_made", tag=tag, k=k, at=start + timedelta(days=2), paid=False, part=True)))
        if cycle.paid:
            at = start + (timedelta(days=3) if cycle.failed else timedelta(minutes=1))
            out.append(SquareEvent(k, f"inv{k + 1}.paid", _invoice_event(
                "invoice.payment_made", tag=tag, k=k, at=at, paid=True)))
            through = cycle_start(k + 1)
        elif cycle.forgiven:
            out.append(SquareEvent(k, f"inv{k + 1}.cancelled", _cancelled_invoice_event(
                tag=tag, k=k, at=start + timedelta(days=4), part=cycle.partial and cycle.failed)))
    if plan.cancelled:
        out.append(SquareEvent(None, "cancelled", _cancelled_event(
            tag=tag, at=out[-1].created + timedelta(days=1), through=through)))
    for n, item in enumerate(out):
        item.event["event_id"] = f"evt-{tag}-{n:02d}"
    created = [item.created for item in out]
    assert created == sorted(created) and len(set(created)) == len(created), "history out of real-time order"
    return out


def store(event: dict, *, now: datetime) -> bool:
    """Stored as the webhook view stores a verified Square event. False: a duplicate, stored once."""
    _, created = inbox.store_event(source=SOURCE, event=envelope_of(event), handled=True, now=now,
                                   raw=json.dumps(event).encode())
    return created


def new_membership(tier, *, tag: str, now: datetime | None = None) -> Membership:
    """A pending membership on the Square subscription `sub-<tag>` (enrollment created it)."""
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=now or T0 - timedelta(minutes=5),
                                  processor_subscription_id=subscription_ref(tag))


def inbound_counts(tag: str) -> dict:
    statuses = InboundEvent.objects.filter(source=SOURCE, event_id__startswith=f"evt-{tag}-").values_list(
        "status", flat=True)
    counts: dict = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts
