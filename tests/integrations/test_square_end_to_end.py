"""Square end to end, on SQLite and PostgreSQL: the real SDK against the fake Square
(tests/support/square_fake.py, every answer and webhook checked against the SDK's models), its
signed webhooks posted to /webhooks/square/ and processed by the inbox, the ledger checked at each
step: enroll → renew → failed scheduled charge → dunning case and messages → payment → recovered →
downgrade at the cycle's end → pause → resume → cancel. Bad input: an unknown plan, a subscription
Square no longer knows, Square answering 429/500.

Enrollment calls the adapter directly (customer, card on file from a Web Payments token, subscription)
and enrolls the member with the subscription's id, and changes are sent to Square the same way here;
the outbox's processor destination sending them is tested in processors/test_square_sync.py."""

from datetime import date, datetime, timedelta, timezone as dt_timezone

import pytest
from django.core import mail
from django.utils import timezone

from billing import dunning
from billing.dunning.quiet import member_zone
from billing.dunning.policy import current_policy
from billing.models import DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from integrations import inbox, outbox
from integrations.messaging import sms
from integrations.models import InboundEvent, InboundStatus
from memberships import selectors, services
from memberships.models import AutomationStage, EntitlementBalance, MembershipStatus, RolloverRule
from memberships.models.practice import Processor
from tests.factories import MemberFactory, TierBenefitFactory, TierFactory
from tests.support.clock import next_daytime
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def work(now):
    for _ in range(20):
        sent = outbox.dispatch_due(now=now)
        done = inbox.process_due(now=now)
        if not sent and not done:
            return
    raise AssertionError("workers did not settle")


def balances(membership):
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")}


def at(day: str, hour: int = 9) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=dt_timezone.utc) + timedelta(hours=hour)


def deliver(fake, client):
    answers = fake.deliver(client)
    assert answers and all(a.status_code == 200 for a in answers), [a.content for a in answers]
    return answers


@pytest.fixture
def world(glow, square, square_fake, settings):
    settings.SMS_BACKEND = "locmem"
    sms.outbox.clear()
    tier, facial, credit = glow
    practice = tier.practice
    practice.processor = Processor.SQUARE
    practice.automation_stage = AutomationStage.DUNNING
    practice.save()
    # Square's invoices are paid by the member or Square's own schedule (no API pays them): a Square
    # practice's policy leaves the retries to the processor by itself; the ledger sends the messages.
    assert current_policy(practice=practice, now=timezone.now()).use_processor_retries is True
    lite = TierFactory(practice=practice, code="lite", name="Lite", processor_name="Membership — Lite",
                       price_cents=14900)
    TierBenefitFactory(tier=lite, service=facial, quantity_per_cycle=1, rollover=RolloverRule.NONE)
    square_fake.now = at("2026-01-05")
    return {"tier": tier, "lite": lite, "practice": practice}


def price_of(square, tier):
    return square.ensure_price(tier_ref=f"tr_{tier.pk}", plan_id="", product_name=tier.processor_name,
                               amount_cents=tier.price_cents, currency=tier.currency, interval=tier.interval)


def enroll(square, fake, tier):
    member = MemberFactory(practice=tier.practice)
    customer = square.ensure_customer(member_ref=f"mb_{member.pk}", existing_ref="", idempotency_key="",
                                      given_name="Nora")
    card = square.save_card(customer_ref=customer, source_token="cnon:card-nonce-ok", member_ref=f"mb_{member.pk}")
    sub = square.ensure_subscription(customer_ref=customer, membership_ref=f"mb_{member.pk}",
                                     price_ref=price_of(square, tier), metadata={"card_ref": card},
                                     idempotency_key="")
    member.processor_customer_id = customer
    member.save(update_fields=["processor_customer_id"])
    membership = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                        idempotency_key=f"enroll:{member.pk}", now=fake.now,
                                        processor_subscription_id=sub.subscription_ref)
    return member, membership, sub.subscription_ref


def test_enroll_renew_fail_dunning_pay_recover_downgrade_pause_resume_cancel(world, square, square_fake, client):
    fake, tier = square_fake, world["tier"]
    member, m, sub_id = enroll(square, fake, tier)

    # Enrolled: Square charged the first cycle; its invoice.payment_made seeds the balance once.
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 1
    assert balances(m) == {"hydrafacial": 1, "product-credit": 5000}
    assert (m.current_period_start, m.current_period_end) == (at("2026-01-05", 0), at("2026-02-05", 0))

    # Renewal a month later: refilled once, however often Square delivers the event.
    fake.now = at("2026-02-05")
    renewal = fake.bill(sub_id)
    body, headers = fake.outbox[0]
    deliver(fake, client)
    assert client.post("/webhooks/square/", data=body, content_type="application/json",
                       headers=headers).json()["duplicate"] is True
    work(fake.now)
    m.refresh_from_db()
    assert m.cycle_number == 2 and balances(m) == {"hydrafacial": 2, "product-credit": 5000}
    assert Invoice.objects.get(processor="square", processor_invoice_id=renewal).status == InvoiceStatus.PAID

    # The next scheduled charge fails: Square keeps the subscription ACTIVE; the ledger owns dunning.
    fake.now = at("2026-03-05")
    failed = fake.bill(sub_id, fail_code="INSUFFICIENT_FUNDS")
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert m.status == MembershipStatus.PAST_DUE and m.cycle_number == 2
    assert fake.subscriptions[sub_id]["status"] == "ACTIVE"
    case = DunningCase.objects.get(invoice_ref=failed)
    assert case.status == DunningCaseStatus.OPEN and case.amount_cents == 19900 and not case.hard
    assert [f.text for f in selectors.open_chart_flags(member=member)] == [
        "Card declined — update card before treatment"]
    morning = next_daytime(max(case.opened_at, fake.now), zone=str(member_zone(member)))
    for _ in range(5):
        dunning.run_dunning(now=morning)
        outbox.dispatch_due(now=morning)
    assert len(sms.outbox) == 1 and len(mail.outbox) == 1
    assert balances(m) == {"hydrafacial": 2, "product-credit": 5000}      # nothing granted for the unpaid cycle

    # The member pays the open invoice (Square's invoice page): recovered, the cycle refilled once.
    fake.now = at("2026-03-07")
    fake.pay_invoice(failed)
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 3
    assert balances(m) == {"hydrafacial": 3, "product-credit": 5000}
    assert list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor="square", processor_invoice_id=failed).status == InvoiceStatus.PAID

    # Downgrade at the cycle's end: the ledger schedules it, Square swaps the plan at the cycle's end.
    services.change_tier(membership=m, new_tier=world["lite"], effective="next_cycle",
                         actor=services.Actor.system(), idempotency_key="down", now=fake.now)
    swapped = square.change_price(subscription_ref=sub_id, price_ref=price_of(square, world["lite"]))
    assert swapped.price_ref == price_of(square, tier) and swapped.extra["changes_on"] == "2026-04-05"
    fake.now = at("2026-04-05")
    lite_invoice = fake.bill(sub_id)
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert m.tier_id == world["lite"].pk and m.cycle_number == 4
    assert Invoice.objects.get(processor_invoice_id=lite_invoice).amount_paid_cents == 14900
    assert balances(m)["hydrafacial"] == 1          # Lite carries nothing over: one facial this cycle

    # Pause and resume through the Subscriptions API; the ledger's doors decide.
    services.pause_membership(membership=m, until=date(2026, 6, 5), actor=services.Actor.system(),
                              idempotency_key="pause", now=fake.now)
    square.pause_collection(subscription_ref=sub_id, resumes_at=None)
    fake.apply_due_actions(today=date(2026, 5, 5))
    deliver(fake, client)
    work(fake.now)
    assert fake.subscriptions[sub_id]["status"] == "PAUSED"
    m.refresh_from_db()
    assert m.status == MembershipStatus.PAUSED
    services.resume_membership(membership=m, actor=services.Actor.system(), idempotency_key="resume",
                               now=at("2026-05-10"))
    fake.now = at("2026-05-10")
    square.resume_collection(subscription_ref=sub_id)
    fake.apply_due_actions(today=date(2026, 5, 10))
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert fake.subscriptions[sub_id]["status"] == "ACTIVE" and m.status == MembershipStatus.ACTIVE
    resumed = fake.bill(sub_id)                     # billing restarts on the resume day
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert Invoice.objects.get(processor_invoice_id=resumed).period_start == at("2026-05-10", 0)
    assert m.cycle_number == 5 and balances(m)["hydrafacial"] == 1

    # Cancel: Square ends the subscription at the paid cycle's end and says so by subscription.updated.
    ended = square.cancel_subscription(subscription_ref=sub_id)
    assert ended.extra["ends_on"] == fake.subscriptions[sub_id]["charged_through_date"]
    fake.now = at(ended.extra["ends_on"])
    fake.apply_due_actions(today=date.fromisoformat(ended.extra["ends_on"]))
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert m.status == MembershipStatus.CANCELLED
    assert ended.extra["ends_on"] == "2026-06-10"
    assert InboundEvent.objects.filter(source="square").exclude(
        status__in=[InboundStatus.PROCESSED, InboundStatus.IGNORED]).count() == 0



# --- bad input: a clear outcome, never a half-written ledger ------------------------------------------

def test_a_payment_for_a_subscription_we_do_not_know_waits_then_fails_with_the_reason(world, square, square_fake,
                                                                                      client, settings):
    from memberships.models import LedgerEntry

    settings.INBOX_MAX_ATTEMPTS = 3
    customer = square.ensure_customer(member_ref="mb_stranger", existing_ref="", idempotency_key="", given_name="Nora")
    card = square.save_card(customer_ref=customer, source_token="cnon:card-nonce-ok", member_ref="mb_stranger")
    stranger = square.ensure_subscription(customer_ref=customer, membership_ref="ms_0",
                                          price_ref=price_of(square, world["tier"]), metadata={"card_ref": card},
                                          idempotency_key="").subscription_ref
    deliver(square_fake, client)
    now = square_fake.now
    for _ in range(6):
        inbox.process_due(now=now)
        now += timedelta(days=1)                     # past every backoff

    row = InboundEvent.objects.get(source="square")
    assert row.status == InboundStatus.FAILED and row.attempts == 3
    assert stranger in row.error and "No membership" in row.error
    assert Invoice.objects.count() == 0 and LedgerEntry.objects.count() == 0


def test_a_signed_event_without_its_invoice_fails_visibly_and_writes_nothing(world, square_fake, client):
    import json

    from memberships.models import LedgerEntry
    from tests.support.square_fake import sign

    body = json.dumps({"merchant_id": "M", "type": "invoice.payment_made", "event_id": "broken-1",
                       "created_at": "2026-01-05T09:00:00Z", "data": {"type": "invoice", "id": "inv:0-x",
                                                                       "object": {}}}).encode()
    answer = client.post("/webhooks/square/", data=body, content_type="application/json", headers={
        "x-square-hmacsha256-signature": sign(body=body, signature_key=square_fake.signature_key,
                                              notification_url=square_fake.notification_url)})
    assert answer.status_code == 200
    work(square_fake.now)

    row = InboundEvent.objects.get(event_id="broken-1")
    assert row.status == InboundStatus.FAILED and "invoice" in row.error
    assert Invoice.objects.count() == 0 and LedgerEntry.objects.count() == 0


def test_an_unknown_plan_is_refused_by_square_and_nothing_is_enrolled(world, square, square_fake):
    from integrations.processors.base import ProcessorRejected
    from memberships.models import Membership

    customer = square.ensure_customer(member_ref="mb_9", existing_ref="", idempotency_key="", given_name="Nora")
    with pytest.raises(ProcessorRejected, match="NOT_FOUND"):
        square.ensure_subscription(customer_ref=customer, membership_ref="ms_9", price_ref="RETIRED_VARIATION",
                                   metadata={}, idempotency_key="")
    assert square_fake.subscriptions == {} and Membership.objects.count() == 0


# --- order from Square's own facts -------------------------------------------------------------------

def _history(square, fake, tier):
    """One member's signed webhooks: first cycle, renewal, a failed charge, its payment."""
    member, m, sub_id = enroll(square, fake, tier)
    fake.now = at("2026-02-05")
    fake.bill(sub_id)
    fake.now = at("2026-03-05")
    failed = fake.bill(sub_id, fail_code="CARD_DECLINED")
    fake.now = at("2026-03-06")
    fake.pay_invoice(failed)
    events, fake.outbox = list(fake.outbox), []
    fake.now = at("2026-01-05")
    return m, events


@pytest.mark.parametrize("order", ["in order", "reversed", "shuffled, each twice"])
def test_any_order_and_any_repetition_ends_in_the_same_ledger(world, square, square_fake, client, order):
    import random

    m, events = _history(square, square_fake, world["tier"])
    if order == "reversed":
        events = events[::-1]
    elif order != "in order":
        events = events * 2
        random.Random(21).shuffle(events)
    for body, headers in events:
        assert client.post("/webhooks/square/", data=body, content_type="application/json",
                           headers=headers).status_code == 200
        work(at("2026-03-07"))

    m.refresh_from_db()
    assert (m.status, m.cycle_number) == (MembershipStatus.ACTIVE, 3)
    assert balances(m) == {"hydrafacial": 3, "product-credit": 5000}
    assert sorted(Invoice.objects.filter(membership=m).values_list("status", flat=True)) == [InvoiceStatus.PAID] * 3
    assert DunningCase.objects.filter(membership=m, status=DunningCaseStatus.OPEN).count() == 0
