"""Stripe histories of one membership, built from the recorded fixtures (tests/fixtures/stripe) in the
order Stripe emits them, and the membership's user-visible state after they were processed.

A history is planned as its invoices — the first one `subscription_create`, each later one
`subscription_cycle` for the next monthly period — each with 0–3 failed attempts and then paid, left
unpaid, or (unpaid) voided or marked uncollectible by the practice, and optionally the subscription
deleted at the end:

    invoice k created (renewals an hour before their period starts)
      invoice.payment_failed (attempt j)  +2 s  customer.subscription.updated (past_due)   every 3 days
      invoice.paid (attempt failures+1)   +2 s  customer.subscription.updated (active)
    or, unpaid, a day after the last failure:
      invoice.voided / invoice.marked_uncollectible  +2 s  customer.subscription.updated (past_due → active)
    invoice k+1 created ... (only after invoice k's attempts)
    customer.subscription.deleted (a day after the last event, within the last period)

Every event's `created` is strictly later than the one before; so are the invoices' `created` and
periods. Ids carry a fixed-width tag of the history (`in_<tag>_2`, `evt_<tag>_07`, `sub_<tag>`) so
histories of several memberships live side by side and their states compare once the tag is
normalized away.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

from hypothesis import strategies as st

from billing.models import DunningCase, DunningCaseStatus, Invoice
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships import selectors, services
from memberships.models import EntitlementBalance, EntryKind, LedgerEntry, Membership

from ..factories import MemberFactory
from .stripe_events import load_event

UTC = dt_timezone.utc
T0 = 1764000000                 # the recorded first invoice's `created` and its period's start
DAY = 86400
MONTH = 30 * DAY                # the recorded periods are 30 days long
RETRY_EVERY = 3 * DAY

PAID_FIRST = "invoice_paid_first.json"
PAID_RENEWAL = "invoice_paid_renewal_recovered.json"
FAILED = "invoice_payment_failed_renewal.json"      # current shape: the decline is read from Stripe
SUB_PAST_DUE = "customer_subscription_updated_past_due.json"
SUB_ACTIVE = "customer_subscription_updated_active.json"
SUB_DELETED = "customer_subscription_deleted.json"
FORGIVEN = {"void": ("invoice_voided_renewal.json", "voided_at"),
            "uncollectible": ("invoice_marked_uncollectible_renewal.json", "marked_uncollectible_at")}


@dataclass(frozen=True)
class InvoicePlan:
    failures: int               # failed attempts before it is paid (or given up on)
    paid: bool
    forgiven: str = ""          # unpaid, then "void" or "uncollectible" at Stripe ("": left open)


@dataclass(frozen=True)
class HistoryPlan:
    invoices: tuple[InvoicePlan, ...]
    deleted: bool = False

    def __str__(self) -> str:
        parts = [f"inv{k + 1}:{'F' * inv.failures}{'P' if inv.paid else (inv.forgiven[:1].upper() or '-')}"
                 for k, inv in enumerate(self.invoices)]
        return " ".join(parts + (["deleted"] if self.deleted else []))


@dataclass(frozen=True)
class HistoryEvent:
    """One event of a history: which invoice it is about (None for the deletion), a short label
    (`inv2.fail1`, `inv2.past_due1`, `inv2.paid`, `inv2.active`, `deleted`) and the Stripe event."""

    invoice: int | None
    label: str
    event: dict

    @property
    def created(self) -> int:
        return self.event["created"]


def period(k: int) -> tuple[int, int]:
    """The k-th (0-based) monthly period, unix seconds."""
    start = T0 + k * MONTH
    return start, start + MONTH


def period_dt(k: int) -> tuple[datetime, datetime]:
    start, end = period(k)
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def invoice_ref(tag: str, k: int) -> str:
    return f"in_{tag}_{k + 1}"


def subscription_ref(tag: str) -> str:
    return f"sub_{tag}"


# --- plans ------------------------------------------------------------------------------------------

def history_plans(*, max_invoices: int = 4) -> st.SearchStrategy[HistoryPlan]:
    """Histories of 1..max_invoices invoices. The first invoice is always paid in the end: a
    subscription whose first invoice is never paid gets no renewals."""
    failures = st.sampled_from([0, 1, 2, 3, 0, 1])      # fewer failures than not, as in life
    invoice = st.builds(InvoicePlan, failures=failures, paid=st.booleans(),
                        forgiven=st.sampled_from(["", "", "void", "uncollectible"]))
    first = st.builds(InvoicePlan, failures=failures, paid=st.just(True))
    return st.builds(
        lambda head, tail, deleted: HistoryPlan(invoices=(head, *tail), deleted=deleted),
        first, st.lists(invoice, max_size=max_invoices - 1), st.booleans(),
    )


def random_plan(rng: random.Random, *, max_invoices: int = 4) -> HistoryPlan:
    """The same shape of history as `history_plans`, from a seeded generator (for tests that need
    many histories at once rather than one per example)."""
    n = rng.randint(1, max_invoices)
    invoices = [InvoicePlan(failures=rng.choice([0, 1, 2, 3, 0, 1]), paid=True)]
    invoices += [InvoicePlan(failures=rng.choice([0, 1, 2, 3, 0, 1]), paid=rng.random() < 0.75,
                             forgiven=rng.choice(["", "", "void", "uncollectible"])) for _ in range(n - 1)]
    return HistoryPlan(invoices=tuple(invoices), deleted=rng.random() < 0.25)


# --- events -----------------------------------------------------------------------------------------

def _load(name: str, *, membership, sub_ref: str) -> dict:
    return load_event(name, membership=membership, subscription_ref=sub_ref)


def _invoice_event(name: str, *, membership, tag: str, k: int, attempt: int, created: int,
                   paid_at: int | None, next_attempt: int | None) -> dict:
    event = _load(name, membership=membership, sub_ref=subscription_ref(tag))
    inv = event["data"]["object"]
    ref = invoice_ref(tag, k)
    start, end = period(k)
    inv_created = T0 if k == 0 else start - 3600
    inv.update(
        id=ref, created=inv_created, effective_at=inv_created, number=f"{tag.upper()}-{k + 1:04d}",
        billing_reason="subscription_create" if k == 0 else "subscription_cycle",
        attempt_count=attempt, attempted=True, next_payment_attempt=next_attempt,
        hosted_invoice_url=f"https://invoice.stripe.com/i/acct_fixture/test_{ref}",
        invoice_pdf=f"https://pay.stripe.com/invoice/acct_fixture/test_{ref}/pdf",
    )
    # The invoice-level period is the one billed in arrears (none for the first invoice).
    inv["period_start"], inv["period_end"] = (inv_created, inv_created) if k == 0 else period(k - 1)
    inv["status_transitions"] = {"finalized_at": inv_created, "marked_uncollectible_at": None,
                                 "paid_at": paid_at, "voided_at": None}
    line = inv["lines"]["data"][0]
    line.update(id=f"il_{ref}", invoice=ref, period={"start": start, "end": end})
    inv["lines"]["url"] = f"/v1/invoices/{ref}/lines"
    event["created"] = created
    return event


def _forgiven_event(how: str, *, membership, tag: str, k: int, attempt: int, created: int) -> dict:
    """`invoice.voided` / `invoice.marked_uncollectible` of invoice k, `created` its moment."""
    name, transition = FORGIVEN[how]
    event = _invoice_event(name, membership=membership, tag=tag, k=k, attempt=attempt, created=created,
                           paid_at=None, next_attempt=None)
    event["data"]["object"]["status_transitions"][transition] = created - 1
    return event


def _subscription_event(name: str, *, membership, tag: str, k: int, created: int, status: str,
                        previous_status: str, latest_invoice: str) -> dict:
    event = _load(name, membership=membership, sub_ref=subscription_ref(tag))
    sub = event["data"]["object"]
    start, end = period(k)
    item = sub["items"]["data"][0]
    item["current_period_start"], item["current_period_end"] = start, end
    sub.update(status=status, latest_invoice=latest_invoice)
    if event["type"] == "customer.subscription.deleted":
        sub.update(canceled_at=created - 1, ended_at=created - 1)
    else:
        event["data"]["previous_attributes"] = {"status": previous_status} if previous_status != status else {}
    event["created"] = created
    return event


def build_history(plan: HistoryPlan, *, membership, tag: str) -> list[HistoryEvent]:
    """The plan's events in the order Stripe emits them (strictly increasing `created`).
    `membership`: whose `ms_<pk>` goes in the metadata (None: the recorded `ms_0`, a membership
    that does not exist)."""
    out: list[HistoryEvent] = []
    status = "incomplete"
    for k, inv in enumerate(plan.invoices):
        start, _ = period(k)
        first_attempt = T0 + 2 if k == 0 else start + 10
        ref = invoice_ref(tag, k)
        for j in range(1, inv.failures + 1):
            at = first_attempt + (j - 1) * RETRY_EVERY
            last = j == inv.failures and not inv.paid
            out.append(HistoryEvent(k, f"inv{k + 1}.fail{j}", _invoice_event(
                FAILED, membership=membership, tag=tag, k=k, attempt=j, created=at, paid_at=None,
                next_attempt=None if last else at + RETRY_EVERY)))
            out.append(HistoryEvent(k, f"inv{k + 1}.past_due{j}", _subscription_event(
                SUB_PAST_DUE, membership=membership, tag=tag, k=k, created=at + 2, status="past_due",
                previous_status=status, latest_invoice=ref)))
            status = "past_due"
        if inv.paid:
            at = first_attempt + inv.failures * RETRY_EVERY
            out.append(HistoryEvent(k, f"inv{k + 1}.paid", _invoice_event(
                PAID_FIRST if k == 0 else PAID_RENEWAL, membership=membership, tag=tag, k=k,
                attempt=inv.failures + 1, created=at + 1, paid_at=at, next_attempt=None)))
            out.append(HistoryEvent(k, f"inv{k + 1}.active", _subscription_event(
                SUB_ACTIVE, membership=membership, tag=tag, k=k, created=at + 3, status="active",
                previous_status=status, latest_invoice=ref)))
            status = "active"
        elif inv.forgiven:
            at = first_attempt + max(inv.failures - 1, 0) * RETRY_EVERY + DAY
            out.append(HistoryEvent(k, f"inv{k + 1}.{inv.forgiven}", _forgiven_event(
                inv.forgiven, membership=membership, tag=tag, k=k, attempt=inv.failures, created=at)))
            if status != "active":              # Stripe: the latest invoice forgiven, the subscription active
                out.append(HistoryEvent(k, f"inv{k + 1}.active", _subscription_event(
                    SUB_ACTIVE, membership=membership, tag=tag, k=k, created=at + 2, status="active",
                    previous_status=status, latest_invoice=ref)))
                status = "active"
    if plan.deleted:
        k = len(plan.invoices) - 1
        out.append(HistoryEvent(None, "deleted", _subscription_event(
            SUB_DELETED, membership=membership, tag=tag, k=k, created=out[-1].created + DAY, status="canceled",
            previous_status=status, latest_invoice=invoice_ref(tag, k))))
    for n, item in enumerate(out):
        item.event["id"] = f"evt_{tag}_{n:02d}"
    created = [item.created for item in out]
    assert created == sorted(created) and len(set(created)) == len(created), "history out of real-time order"
    return out


# --- delivery ---------------------------------------------------------------------------------------

def when(created: int) -> datetime:
    return datetime.fromtimestamp(created, UTC)


def store(event: dict, *, now: datetime) -> bool:
    """Store as the webhook view does (verified, a handled type). False: a duplicate, stored once."""
    _, created = inbox.store_event(source=inbox.SOURCE_STRIPE, event=event, handled=True, now=now)
    return created


def deliver_in_order(history: list[HistoryEvent]) -> None:
    """The reference: each event once, in real-time order, processed as soon as it arrives."""
    for item in history:
        now = when(item.created)
        store(item.event, now=now)
        inbox.process_due(now=now)


def drain(*, now: datetime, rounds: int = 50) -> None:
    """Process until nothing is `received`: `now` far enough ahead that every event waiting with
    backoff is due (each round moves it a day further)."""
    for n in range(rounds):
        inbox.process_due(now=now + timedelta(days=n))
        if not InboundEvent.objects.filter(status=InboundStatus.RECEIVED).exists():
            return
    raise AssertionError("events still received after draining")


def new_membership(tier, *, tag: str, now: datetime | None = None) -> Membership:
    """A pending membership whose Stripe subscription is `sub_<tag>` (enrollment created it)."""
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=now or when(T0 - 60),
                                  processor_subscription_id=subscription_ref(tag))


# --- the state a user sees --------------------------------------------------------------------------

def _norm(text: str, tag: str) -> str:
    return text.replace(f"_{tag}_", "_T_").replace(f"sub_{tag}", "sub_T")


def _ledger(entries: list[LedgerEntry], *, membership_pk: int, tag: str) -> dict[tuple, int]:
    """The ledger by what each entry did, quantities summed: the cycle each invoice granted
    (`grant`, service, invoice), the cycle-end expiry of each grant (`expire`, service, the invoice
    that granted the lot), carried-over units cut at the cap (`expire over cap`, service: such units
    are interchangeable), and which balances were frozen (`freeze`, service: a freeze moves nothing;
    a cycle heard of after the cancellation may add one for itself). Ids in keys are named by what
    they stand for. Which boundary expired a lot is left out: an append-only ledger that hears of
    cycles out of order runs its boundaries in arrival order."""
    lot_invoice = {e.lot_id: _norm(e.cycle_key, tag) for e in entries if e.kind == EntryKind.GRANT and e.lot_id}
    out: dict[tuple, int] = {}

    def add(label: tuple, quantity: int) -> None:
        out[label] = out.get(label, 0) + quantity

    for e in entries:
        code = e.service.code
        if e.kind == EntryKind.GRANT:
            add(("grant", code, _norm(e.cycle_key, tag)), e.quantity)
        elif e.kind == EntryKind.EXPIRE and e.idempotency_key.startswith("cap:"):
            add(("expire over cap", code), e.quantity)
        elif e.kind == EntryKind.EXPIRE and e.lot_id in lot_invoice:
            add(("expire", code, lot_invoice[e.lot_id]), e.quantity)
        elif e.kind == EntryKind.FREEZE and e.quantity == 0:
            out[("freeze", code)] = 0
        else:
            parts = e.idempotency_key.split(":")
            if len(parts) > 1 and parts[1] == str(membership_pk):
                parts[1] = "M"
            add((e.kind, code, _norm(":".join(parts), tag)), e.quantity)
    return dict(sorted(out.items()))


def capture_state(membership: Membership, *, tag: str) -> dict:
    """What staff and the member see of the membership: status, cycle, period, paid through (when
    cancelled), balances (and whether frozen), the ledger (`_ledger`), the open dunning cases and
    chart flags, the mirrored invoices (status, attempts), and this history's inbound events by
    status. Only open dunning cases count: a case opened and recovered is as closed as one never
    opened (a failure heard of after its invoice was paid opens none)."""
    m = Membership.objects.select_related("member").get(pk=membership.pk)
    balances = {b.service.code: (b.balance, b.reserved, b.frozen_at is not None)
                for b in EntitlementBalance.objects.filter(membership=m).select_related("service")}
    entries = list(LedgerEntry.objects.filter(membership=m).select_related("service").order_by("id"))
    cases = {c.pk: _norm(c.invoice_ref, tag) for c in DunningCase.objects.filter(membership=m)}
    open_cases = sorted(_norm(ref, tag) for ref in DunningCase.objects.filter(
        membership=m, status=DunningCaseStatus.OPEN).values_list("invoice_ref", flat=True))
    flags = []
    for flag in selectors.open_chart_flags(member=m.member):
        ref = flag.source_ref
        if ref.startswith("dunning-case:") and ref.split(":", 1)[1].isdigit():
            ref = f"dunning-case:{cases.get(int(ref.split(':', 1)[1]), '?')}"
        flags.append((flag.source, flag.text, ref))
    invoices = {_norm(i.processor_invoice_id, tag): (i.status, i.attempt_count)
                for i in Invoice.objects.filter(membership=m)}
    # A cancelled member's frozen credit is "usable until" the end of a paid period still running at
    # the processor's end of the subscription, else that end: processor facts, whenever processed.
    paid_through = m.paid_through
    inbound = Counter(InboundEvent.objects.filter(source=inbox.SOURCE_STRIPE, event_id__startswith=f"evt_{tag}_")
                      .values_list("status", flat=True))
    return {
        "status": m.status,
        "cycle_number": m.cycle_number,
        "current_period": (m.current_period_start, m.current_period_end),
        "paid_through": paid_through,
        "balances": balances,
        "ledger": _ledger(entries, membership_pk=m.pk, tag=tag),
        "open_dunning_cases": open_cases,
        "open_chart_flags": sorted(flags),
        "invoices": invoices,
        "inbound": dict(inbound),
    }
