"""Renewal day in bulk: many paid renewal invoices recorded in a few statements.

`billing.services.record_charge_succeeded` is the rule book for a paid invoice. `record_renewals`
takes from a batch only the paid invoices for which that rule book would do nothing but mirror the
invoice, write "charge succeeded" and refill the next cycle: a new invoice (never seen, no dunning
case), that opens a billing cycle (`opens_cycle`), for an active membership renewed for the period
after its current one (`memberships.services.renewals.is_plain_renewal`). Those it records together
— the memberships locked once, in id order — and the ledger refills them with `refill_many`. It
returns the charges it did not take; the caller sends each through `record_charge_succeeded`."""

from __future__ import annotations

from datetime import datetime

from memberships.models import Event, EventKind, Membership
from memberships.services import Actor
from memberships.services import renewals as ledger_renewals
from memberships.services import sql as rows
from memberships.services.common import record_events

from .facts import ChargeSucceeded
from .models import DunningCase, Invoice, InvoiceStatus
from .services import charge_succeeded_text, opens_cycle


def record_renewals(*, charges: list[ChargeSucceeded], now: datetime) -> tuple[dict[str, int], list[ChargeSucceeded]]:
    """({invoice ref: practice id} of the charges recorded, the charges left for the ordinary path).
    Run it inside a transaction (savepoint): if it raises, nothing it did is kept."""
    if not ledger_renewals.available() or not charges:
        return {}, list(charges)
    subscriptions = {c.subscription_ref for c in charges if c.subscription_ref}
    locked = {m.processor_subscription_id: m for m in
              Membership.objects.select_for_update(of=("self",)).select_related("member__practice",
                                                                                "member__home_location")
              .filter(processor_subscription_id__in=subscriptions).order_by("pk")}
    refs = [c.invoice_ref for c in charges]
    known = set(Invoice.objects.filter(processor_invoice_id__in=refs).values_list("processor_invoice_id", flat=True))
    known |= set(DunningCase.objects.filter(invoice_ref__in=refs).values_list("invoice_ref", flat=True))
    taken, rest, seen = [], [], set()
    for charge in charges:
        membership = locked.get(charge.subscription_ref)
        if (membership is None or charge.invoice_ref in known or membership.pk in seen
                or not ledger_renewals.is_plain_renewal(membership, period_start=charge.period_start)
                or not opens_cycle(charge=charge, membership=membership)[0]):
            rest.append(charge)
            continue
        seen.add(membership.pk)
        taken.append((charge, membership))
    if not taken:
        return {}, rest

    invoices = rows.insert_many([
        Invoice(practice_id=m.member.practice_id, membership=m, processor=c.processor,
                processor_invoice_id=c.invoice_ref, processor_subscription_id=c.subscription_ref,
                amount_cents=c.amount_cents, amount_paid_cents=c.amount_paid_cents or c.amount_cents,
                currency=c.currency, status=InvoiceStatus.PAID, period_start=c.period_start, period_end=c.period_end,
                attempt_count=c.attempt_count, paid_at=c.paid_at or now, opened_cycle=True,
                processor_created=c.created, last_event_created=c.event_created, created_at=now, updated_at=now)
        for c, m in taken])
    actor = Actor.processor(taken[0][0].processor)
    events = []
    for (c, m), invoice in zip(taken, invoices):
        summary, payload = charge_succeeded_text(invoice, billing_reason=c.billing_reason, cycle=True)
        events.append(Event(practice=m.member.practice, member=m.member, membership=m,
                            kind=EventKind.CHARGE_SUCCEEDED, summary=summary, payload=payload,
                            actor_type=actor.type, actor_user_id=actor.user_id, created_at=now))
    record_events(events)
    ledger_renewals.refill_many(
        renewals=[ledger_renewals.Renewal(membership=m, cycle_key=c.invoice_ref, period_start=c.period_start,
                                          period_end=c.period_end) for c, m in taken],
        actor=actor, now=now)
    return {c.invoice_ref: m.member.practice_id for c, m in taken}, rest
