"""On PostgreSQL, with real threads: a practice imports its spreadsheet while the worker applies
Stripe's webhooks for the same members — first invoices of members the ledger already has (their
contacts the sheet updates) and of members the sheet brings in (their invoices arrived before the
import). Whichever runs first, or both at once, the end is the one the sequential order gives:
nothing doubled, no event failed, every invoice granted once."""

from datetime import timedelta

import pytest

from billing.models import ImportStatus, SheetRow
from billing.sheets.batches import create_import_batch, run_import_batch
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import EntitlementBalance, Member, Membership
from memberships import services
from tests.factories import MemberFactory, PracticeFactory, glow_tier
from tests.memberships.ledger_checks import hammer
from tests.support.stripe_events import load_event

from .test_import import NOW

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("pg-threads")]

KNOWN, NEW = 25, 25
LATER = NOW + timedelta(days=2)        # past every retry of an event that waited for its membership


def _practice_with_backlog(practice, tag: str) -> bytes:
    """`KNOWN` members enrolled with their first invoices waiting in the inbox, `NEW` first invoices of
    subscriptions the ledger does not know yet; the sheet naming them all (the known ones by email,
    with a new mobile)."""
    tier, _, _ = glow_tier(practice)
    known = []
    for i in range(KNOWN):
        member = MemberFactory(practice=practice)
        known.append(services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), now=NOW,
                                            idempotency_key=f"enroll:{tag}{i}",
                                            processor_subscription_id=f"sub_{tag}k{i}"))
    for ref in [f"{tag}k{i}" for i in range(KNOWN)] + [f"{tag}n{j}" for j in range(NEW)]:
        event = load_event("invoice_paid_first.json", subscription_ref=f"sub_{ref}", event_suffix=f"_{ref}")
        event["data"]["object"]["id"] += f"_{ref}"
        inbox.store_event(source="stripe", event=event, handled=True, now=NOW)
    lines = ["Name,Email,Cell #,Plan,Member Since,HydraFacials left,Stripe subscription"]
    for i, membership in enumerate(known):
        member = membership.member
        lines.append(f"{member.first_name} {member.last_name},{member.email},(626) 555-{i:04d},Glow,1/3/2024,,")
    for j in range(NEW):
        lines.append(f"New{j} Member{j},new{j}.{tag}@example.com,(626) 556-{j:04d},Glow,1/3/2024,{j % 3},"
                     f"sub_{tag}n{j}")
    return ("\r\n".join(lines) + "\r\n").encode()


def drain(now):
    while inbox.process_due(now=now):
        pass


def outcome(practice) -> list:
    """Per member, in sheet order (member number), what a manager would check."""
    rows = []
    for member in Member.objects.filter(practice=practice).order_by("member_number"):
        memberships = list(Membership.objects.filter(member=member))
        balances = sorted(EntitlementBalance.objects.filter(membership__member=member)
                          .values_list("service__code", "balance"))
        rows.append((member.phone, [m.status for m in memberships], [m.cycle_number for m in memberships], balances))
    return rows


def test_an_import_while_the_worker_applies_webhooks_for_the_same_members_doubles_nothing(practice):
    sheet = _practice_with_backlog(practice, "c")
    batch = create_import_batch(practice=practice, file_name="members.csv", content=sheet, dry_run=False, now=NOW)
    results, errors = hammer(n=2, fn=lambda i: run_import_batch(batch_id=batch.pk, now=NOW) if i == 0
                             else drain(NOW))
    assert not errors, errors
    drain(LATER)
    assert [r.status for r in results if r is not None] == [ImportStatus.IMPORTED]
    assert not InboundEvent.objects.exclude(status=InboundStatus.PROCESSED).exists(), list(
        InboundEvent.objects.exclude(status=InboundStatus.PROCESSED).values_list("status", "error"))
    assert Member.objects.filter(practice=practice).count() == KNOWN + NEW
    assert SheetRow.objects.filter(practice=practice).count() == KNOWN + NEW

    reference = PracticeFactory(slug="reference")
    in_order = _practice_with_backlog(reference, "r")
    first = create_import_batch(practice=reference, file_name="members.csv", content=in_order, dry_run=False, now=NOW)
    assert run_import_batch(batch_id=first.pk, now=NOW).status == ImportStatus.IMPORTED
    drain(NOW)
    drain(LATER)
    assert outcome(practice) == outcome(reference)
    # Every member once, active, their first invoice granted once over any opening balance.
    assert [(statuses, cycles) for _, statuses, cycles, _ in outcome(practice)] == [(["active"], [1])] * (KNOWN + NEW)
    assert [dict(balances)["hydrafacial"] for *_, balances in outcome(practice)][KNOWN:] == [
        1 + j % 3 for j in range(NEW)]
