"""A tier change "now" at a Square practice, on SQLite and PostgreSQL: the confirmation page says in
words what Square does (no swap mid-cycle, no proration: the subscription is replaced when the paid
month ends), the outbox's delivery cancels the old subscription at the end of its paid month and
starts one on the new plan that day — once, however often the worker retries — and when that day
comes the old subscription's end does not cancel the membership while the new one's first invoice
refills it with the new tier's benefits. Against the fake Square (the real SDK, answers checked)."""

from datetime import date, datetime, time, timedelta, timezone as dt_timezone

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import inbox, outbox
from integrations.models import InboundEvent, InboundStatus
from integrations.processors import sync
from memberships.models import EntitlementBalance, Membership, MembershipStatus, RolloverRule
from tests.factories import TierBenefitFactory, TierFactory
from tests.staff.conftest import form_value

from .test_square_cards import on_square, square_env, square_fake, square_fake_class, subscribed  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def luxe(on_square, glow):
    tier, facial, credit = glow
    rich = TierFactory(practice=tier.practice, code="luxe", name="Luxe", processor_name="Membership — Tier C",
                       price_cents=34900, rank=3)
    TierBenefitFactory(tier=rich, service=facial, quantity_per_cycle=2, rollover=RolloverRule.NONE)
    TierBenefitFactory(tier=rich, service=credit, quantity_per_cycle=10000, rollover=RolloverRule.NONE)
    return rich


@pytest.fixture
def paid_month(settings, square_fake, subscribed, client):
    """The subscribed member's first month paid at Square (its webhook processed): active, with a period."""
    member, membership, _ = subscribed
    sub_id = membership.processor_subscription_id
    assert len(square_fake.invoices) == 1           # Square charged the first month as it subscribed
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    inbox.process_due(now=timezone.now())
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.current_period_end is not None
    return member, membership, sub_id


def confirm_page(client, member, tier, effective):
    url = reverse("memberships:change_tier", args=[member.pk])
    token = form_value(client.get(url).content.decode(), "token")
    data = {"token": token, "tier": tier.pk, "effective": effective}
    page = client.post(url, data)
    assert page.status_code == 200
    return url, data, page.content.decode()


def settle(now):
    for _ in range(10):
        if not outbox.dispatch_due(now=now) and not inbox.process_due(now=now):
            return
    raise AssertionError("workers did not settle")


def balances(membership):
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")}


def test_now_at_square_replaces_the_subscription_when_the_paid_month_ends(client, front_desk, paid_month, luxe,
                                                                         square_fake):
    member, membership, old_id = paid_month
    ends = membership.current_period_end
    client.force_login(front_desk)
    url, data, html = confirm_page(client, member, luxe, "now")
    assert ("Square cannot change a price part-way through a paid month and does not prorate, so the current "
            f"subscription ends when the month already paid ends ({ends:%b %d, %Y}) and a new one at "
            "$349.00/month starts that day; nothing more is charged and nothing is refunded") in html
    assert "Billing: the new price is charged from the next invoice" not in html         # Stripe's words
    assert client.post(url, {**data, "confirm": "1"}).status_code == 302

    now = timezone.now()
    settle(now)
    membership.refresh_from_db()
    old = square_fake.subscriptions[old_id]
    new = square_fake.subscriptions[membership.processor_subscription_id]
    through = old["charged_through_date"]
    assert through == ends.date().isoformat()
    assert old["canceled_date"] == through and old["status"] == "ACTIVE"       # paid month runs to its end
    assert new["status"] == "PENDING" and new["start_date"] == through and new["card_id"] == old["card_id"]
    assert square_fake.price_of(new["plan_variation_id"]) == 34900
    assert len(square_fake.invoices) == 1                 # nothing charged now

    # the worker retries the delivery (a lost answer), even from before the id was kept: no second one
    luxe_price = sync.ensure_price(sync.processor_for(member.practice), luxe, idempotency_key="retry")
    for start_from in (new["id"], old_id):
        Membership.objects.filter(pk=membership.pk).update(processor_subscription_id=start_from)
        membership.refresh_from_db()
        again = sync.sync_tier(sync.processor_for(member.practice), membership, scheduled=False,
                               idempotency_key="retry", now=now)
        assert again["subscription"] == new["id"]
    assert len(square_fake.subscriptions) == 2
    assert square_fake.calls("POST", f"/v2/subscriptions/{old_id}/cancel") == 1
    assert new["plan_variation_id"] == luxe_price

    # the day comes: the old subscription ends, the new one bills its first month at the new price
    square_fake.now = datetime.combine(date.fromisoformat(through), time(9), tzinfo=dt_timezone.utc)
    square_fake.apply_due_actions()
    assert old["status"] == "CANCELED"
    square_fake.bill(new["id"])
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    settle(square_fake.now + timedelta(minutes=1))
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.tier == luxe
    assert membership.processor_subscription_id == new["id"] and membership.cycle_number == 2
    assert balances(membership) == {"hydrafacial": 2, "product-credit": 10000}
    assert not InboundEvent.objects.exclude(status__in=[InboundStatus.PROCESSED, InboundStatus.IGNORED]).exists()


def test_next_cycle_at_square_says_the_plan_is_swapped_at_the_renewal(client, front_desk, paid_month, luxe,
                                                                      square_fake):
    member, membership, old_id = paid_month
    client.force_login(front_desk)
    url, data, html = confirm_page(client, member, luxe, "next_cycle")
    assert (f"Billing at Square: the plan is swapped at the renewal ({membership.current_period_end:%b %d, %Y}); "
            "Square keeps one scheduled swap") in html
    client.post(url, {**data, "confirm": "1"})
    settle(timezone.now())
    assert len(square_fake.subscriptions) == 1
    (swap,) = [a for a in square_fake._actions[old_id] if a["type"] == "SWAP_PLAN"]
    assert square_fake.price_of(swap["new_plan_variation_id"]) == 34900


def test_stripe_practice_keeps_stripes_words(client, front_desk, member_with_glow, glow):
    from memberships.models import AutomationStage

    member, membership, *_ = member_with_glow
    practice = member.practice
    practice.automation_stage = AutomationStage.TIER_SYNC
    practice.save(update_fields=["automation_stage"])
    rich = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900, rank=3)
    client.force_login(front_desk)
    _, _, html = confirm_page(client, member, rich, "now")
    assert "Billing: the new price is charged from the next invoice" in html and "Square" not in html


@pytest.fixture
def member_with_glow(glow):
    from tests.factories import ana_garcia

    tier, facial, credit = glow
    member, membership = ana_garcia(tier)
    return member, membership, facial, credit


def test_changing_back_now_before_the_new_subscription_starts_charges_nothing_early(paid_month, luxe, glow,
                                                                                   square_fake):
    from memberships import services

    member, membership, first_id = paid_month
    through = square_fake.subscriptions[first_id]["charged_through_date"]
    processor = sync.processor_for(member.practice)
    for tier in (luxe, glow[0]):                          # Glow → Luxe now, then back to Glow now
        services.change_tier(membership=membership, new_tier=tier, effective="now", actor=services.Actor.system(),
                             idempotency_key=f"now:{tier.pk}", now=timezone.now())
        membership.refresh_from_db()
        sync.sync_tier(processor, membership, scheduled=False, idempotency_key=f"now:{tier.pk}", now=timezone.now())
        membership.refresh_from_db()
    current = square_fake.subscriptions[membership.processor_subscription_id]
    assert len(square_fake.subscriptions) == 3 and current["id"] != first_id
    assert current["start_date"] == through and current["status"] == "PENDING"     # not today
    assert square_fake.price_of(current["plan_variation_id"]) == 19900
    assert len(square_fake.invoices) == 1


def _deliver_newest_first(fake, client):
    fake.outbox.reverse()
    for answer in fake.deliver(client):
        assert answer.status_code == 200


def test_the_old_subscriptions_end_heard_after_the_new_ones_first_invoice_changes_nothing(client, front_desk,
                                                                                        paid_month, luxe, square_fake):
    """Square's webhooks come in no set order: the new subscription's first paid invoice is processed
    first, the old subscription's cancellation (and its `canceled_date` update) after it, in another
    batch. The member stays active on Luxe, refilled once, on the new subscription."""
    member, membership, old_id = paid_month
    client.force_login(front_desk)
    url, data, _ = confirm_page(client, member, luxe, "now")
    client.post(url, {**data, "confirm": "1"})
    settle(timezone.now())
    membership.refresh_from_db()
    new_id = membership.processor_subscription_id
    through = square_fake.subscriptions[old_id]["charged_through_date"]
    square_fake.now = datetime.combine(date.fromisoformat(through), time(9), tzinfo=dt_timezone.utc)
    square_fake.apply_due_actions()
    square_fake.bill(new_id)
    later = square_fake.now + timedelta(minutes=1)
    paid = [m for m in square_fake.outbox if b"invoice.payment_made" in m[0]]
    rest = [m for m in square_fake.outbox if b"invoice.payment_made" not in m[0]]
    assert len(paid) == 1 and any(b'"CANCELED"' in body and old_id.encode() in body for body, _ in rest)
    square_fake.outbox[:] = paid
    _deliver_newest_first(square_fake, client)
    settle(later)
    square_fake.outbox[:] = rest
    _deliver_newest_first(square_fake, client)
    settle(later + timedelta(minutes=1))
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.tier == luxe
    assert membership.processor_subscription_id == new_id and membership.cycle_number == 2
    assert balances(membership) == {"hydrafacial": 2, "product-credit": 10000}
    assert not InboundEvent.objects.exclude(status__in=[InboundStatus.PROCESSED, InboundStatus.IGNORED]).exists()


def test_a_past_due_member_who_changes_tier_now_then_pays_the_old_subscriptions_open_invoice_is_settled(
        client, front_desk, paid_month, luxe, square_fake):
    """The second month's charge fails at Square (the member is past due, a dunning case opens); the
    front desk changes her tier now, so that subscription is replaced; then she pays the open invoice
    on Square's page from the dunning message. That payment is for her membership: it is heard (no
    event left waiting for a membership), her case closes, she is active again, the cycle refilled
    once; the new subscription still starts when the month that invoice paid ends."""
    from billing.models import DunningCase, DunningCaseStatus

    member, membership, old_id = paid_month
    old = square_fake.subscriptions[old_id]
    square_fake.now = datetime.combine(date.fromisoformat(old["charged_through_date"]), time(9),
                                       tzinfo=dt_timezone.utc)
    due = old["charged_through_date"]
    open_invoice = square_fake.bill(old_id, fail_code="GENERIC_DECLINE")
    # Square's reference: "After the invoice is sent for a given billing period, [charged_through_date]
    # will be the last day of the billing period" — sent, paid or not
    old["charged_through_date"] = square_fake.cycle_after(old["plan_variation_id"], date.fromisoformat(due)).isoformat()
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    settle(square_fake.now)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAST_DUE
    assert DunningCase.objects.get(invoice_ref=open_invoice).status == DunningCaseStatus.OPEN

    client.force_login(front_desk)
    url, data, _ = confirm_page(client, member, luxe, "now")
    client.post(url, {**data, "confirm": "1"})
    settle(square_fake.now)
    membership.refresh_from_db()
    new = square_fake.subscriptions[membership.processor_subscription_id]
    assert new["id"] != old_id and new["start_date"] == old["charged_through_date"] and new["status"] == "PENDING"

    square_fake.now += timedelta(days=2)
    square_fake.pay_invoice(open_invoice)                    # on Square's page, from the dunning message
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    settle(square_fake.now)
    membership.refresh_from_db()
    assert not InboundEvent.objects.exclude(status__in=[InboundStatus.PROCESSED, InboundStatus.IGNORED]).exists()
    assert DunningCase.objects.get(invoice_ref=open_invoice).status == DunningCaseStatus.RECOVERED
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 2
    assert membership.processor_subscription_id == new["id"]


def test_cancelled_after_a_tier_change_now_the_new_subscription_never_charges(client, front_desk, paid_month, luxe,
                                                                             square_fake):
    """Glow → Luxe now (the Luxe subscription waits for the paid month's end), then the member cancels
    before that day: the cancellation reaches the subscription the membership is on now — the waiting
    Luxe one — so when the paid month ends both end, nothing is charged at the new price, and Square's
    last events (both subscriptions' ends) change nothing more."""
    from memberships import services

    member, membership, old_id = paid_month
    client.force_login(front_desk)
    url, data, _ = confirm_page(client, member, luxe, "now")
    client.post(url, {**data, "confirm": "1"})
    settle(timezone.now())
    membership.refresh_from_db()
    new_id = membership.processor_subscription_id
    services.cancel_membership(membership=membership, actor=services.Actor.staff(front_desk),
                               idempotency_key="cancel-after-change", now=timezone.now())
    settle(timezone.now())
    new = square_fake.subscriptions[new_id]
    through = square_fake.subscriptions[old_id]["charged_through_date"]
    assert new["canceled_date"] <= through and square_fake.calls("POST", f"/v2/subscriptions/{new_id}/cancel") == 1

    square_fake.now = datetime.combine(date.fromisoformat(through), time(9), tzinfo=dt_timezone.utc)
    square_fake.apply_due_actions()
    assert square_fake.subscriptions[old_id]["status"] == new["status"] == "CANCELED"
    assert len(square_fake.invoices) == 1                     # the first month only
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    settle(square_fake.now + timedelta(minutes=1))
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.CANCELLED and membership.processor_subscription_id == new_id
    assert not InboundEvent.objects.exclude(status__in=[InboundStatus.PROCESSED, InboundStatus.IGNORED]).exists()


def test_a_paused_member_whose_tier_is_changed_now_stays_unbilled_while_paused(client, front_desk, paid_month, luxe,
                                                                              square_fake):
    """Paused for three months, then moved to Luxe now: the Luxe subscription that replaces the paused
    one is paused too — nothing is charged at the new price while the ledger says paused."""
    from memberships import services

    member, membership, old_id = paid_month
    until = (timezone.now() + timedelta(days=90)).date()
    services.pause_membership(membership=membership, until=until, actor=services.Actor.staff(front_desk),
                              idempotency_key="pause-then-change", now=timezone.now())
    settle(timezone.now())
    assert any(a["type"] == "PAUSE" for a in square_fake._actions[old_id])
    membership.refresh_from_db()
    services.change_tier(membership=membership, new_tier=luxe, effective="now",
                         actor=services.Actor.staff(front_desk), idempotency_key="change-while-paused",
                         now=timezone.now())
    settle(timezone.now())
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAUSED
    new_id = membership.processor_subscription_id
    assert new_id != old_id
    actions = square_fake._actions[new_id]
    assert [a["type"] for a in actions] == ["PAUSE"]          # the ledger resumes it when the pause ends
