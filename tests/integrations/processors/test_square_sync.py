"""A Square practice's ledger changes reach Square through the outbox's processor destination
(`sync.processor_for`): enrollment (customer, the tier version's plan, the subscription on the card on
file), a tier change at the next cycle (a plan swap), cancellation; Square answering 429/500 is retried
with the outbox's backoff, a subscription Square no longer knows fails (not retried) with the reason."""

from datetime import timedelta

import pytest

from integrations import inbox, outbox
from integrations.models import Delivery, DeliveryStatus
from memberships import services
from memberships.models import AutomationStage, EntitlementBalance, MembershipStatus
from memberships.models.practice import Processor
from tests.factories import MemberFactory, TierFactory
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def work(now):
    for _ in range(20):
        if not outbox.dispatch_due(now=now) and not inbox.process_due(now=now):
            return


def processor_deliveries():
    return Delivery.objects.filter(destination="processor").order_by("pk")


@pytest.fixture
def member_with_card(glow, square, square_fake):
    tier = glow[0]
    practice = tier.practice
    practice.processor, practice.automation_stage = Processor.SQUARE, AutomationStage.TIER_SYNC
    practice.save()
    member = MemberFactory(practice=practice)
    customer = square.ensure_customer(member_ref=f"mb_{member.pk}", existing_ref="", idempotency_key="", given_name="Nora")
    square.save_card(customer_ref=customer, source_token="cnon:card-nonce-ok", member_ref=f"mb_{member.pk}")
    member.processor_customer_id = customer
    member.save(update_fields=["processor_customer_id"])
    return member, tier


def enroll(member, tier, now):
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=now)


def test_enrollment_reaches_square_once_and_its_first_charge_seeds_the_balance(member_with_card, square_fake,
                                                                               client):
    member, tier = member_with_card
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    work(square_fake.now + timedelta(hours=1))

    m.refresh_from_db()
    [sub] = square_fake.subscriptions.values()
    assert m.processor_subscription_id == sub["id"] and sub["card_id"]
    assert square_fake.price_of(sub["plan_variation_id"]) == tier.price_cents
    assert len([o for o in square_fake.catalog.values() if o["type"] == "SUBSCRIPTION_PLAN"]) == 1
    assert [d.status for d in processor_deliveries()] == [DeliveryStatus.DELIVERED]

    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 1
    assert {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=m)} == {
        "hydrafacial": 1, "product-credit": 5000}


def test_square_429_and_500_are_retried_with_backoff_then_go_through_once(member_with_card, square_fake):
    member, tier = member_with_card
    square_fake.fail_next(429, "RATE_LIMITED", "RATE_LIMIT_ERROR")
    enroll(member, tier, square_fake.now)

    work(square_fake.now)
    [delivery] = processor_deliveries()
    assert delivery.status == DeliveryStatus.RETRYING and "429" in delivery.last_error
    assert delivery.next_attempt_at > square_fake.now and square_fake.subscriptions == {}

    square_fake.fail_next(500, "INTERNAL_SERVER_ERROR", "API_ERROR")
    work(delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING and "500" in delivery.last_error

    work(delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and len(square_fake.subscriptions) == 1
    assert len([o for o in square_fake.catalog.values() if o["type"] == "SUBSCRIPTION_PLAN_VARIATION"]) == 1


def test_a_tier_change_at_the_next_cycle_is_a_plan_swap_at_squares_cycle_end(member_with_card, square_fake):
    member, tier = member_with_card
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    lite = TierFactory(practice=tier.practice, code="lite", name="Lite", price_cents=14900)

    services.change_tier(membership=m, new_tier=lite, effective="next_cycle", actor=services.Actor.system(),
                         idempotency_key="down", now=square_fake.now)
    work(square_fake.now)

    [sub] = square_fake.subscriptions.values()
    [swap] = square_fake._actions[sub["id"]]
    assert swap["type"] == "SWAP_PLAN" and square_fake.price_of(swap["new_plan_variation_id"]) == 14900
    assert swap["effective_date"] == sub["charged_through_date"]
    assert square_fake.price_of(sub["plan_variation_id"]) == tier.price_cents      # this cycle keeps its price


def test_cancelling_a_subscription_square_no_longer_knows_fails_with_the_reason_unretried(member_with_card,
                                                                                         square_fake):
    member, tier = member_with_card
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    m.refresh_from_db()
    square_fake.forget_subscription(m.processor_subscription_id)
    services.cancel_membership(membership=m, actor=services.Actor.system(), idempotency_key="cancel",
                               now=square_fake.now)
    work(square_fake.now)

    cancel = processor_deliveries().last()
    assert cancel.status == DeliveryStatus.FAILED and "NOT_FOUND" in cancel.last_error
    m.refresh_from_db()
    assert m.status == MembershipStatus.CANCELLED          # the ledger's decision stands; a manager sees why


def test_below_tier_sync_nothing_is_created_at_square_and_the_shadow_log_says_what_would_have_been(
        member_with_card, square_fake):
    member, tier = member_with_card
    tier.practice.automation_stage = AutomationStage.DUNNING
    tier.practice.save()
    enroll(member, tier, square_fake.now)
    work(square_fake.now)

    [delivery] = processor_deliveries()
    assert delivery.status == DeliveryStatus.SHADOWED
    assert "create the processor customer and subscription" in delivery.note
    assert square_fake.subscriptions == {} and square_fake.calls("POST", "/v2/subscriptions") == 0


def test_a_member_who_rejoins_before_her_cancelled_month_ends_gets_a_subscription_of_her_own(
        member_with_card, square_fake, client):
    """Her cancelled membership's subscription stays ACTIVE at Square until the paid month ends (its
    `canceled_date`): the rejoin must not be put on it, or Square stops billing her at that date and
    its end cancels the membership she has just started."""
    member, tier = member_with_card
    first = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    services.cancel_membership(membership=first, actor=services.Actor.system(), idempotency_key="cancel",
                               now=square_fake.now)
    work(square_fake.now)
    first.refresh_from_db()
    ending = square_fake.subscriptions[first.processor_subscription_id]
    assert ending["canceled_date"] and ending["status"] == "ACTIVE"

    again = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                   idempotency_key=f"rejoin:{member.pk}", now=square_fake.now)
    work(square_fake.now)
    again.refresh_from_db()
    assert again.processor_subscription_id and again.processor_subscription_id != ending["id"]
    assert not square_fake.subscriptions[again.processor_subscription_id].get("canceled_date")

    square_fake.now += timedelta(days=31)                  # the cancelled month ends at Square
    square_fake.apply_due_actions()
    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    again.refresh_from_db()
    assert again.status == MembershipStatus.ACTIVE


def test_a_pause_shorter_than_a_month_reaches_square_and_the_ledger_resumes_it(member_with_card, square_fake,
                                                                                client):
    """Three weeks away across the renewal: Square pauses at the paid month's end, and refuses a resume
    date less than a billing cycle after that, so the pause is sent without one and the ledger's own
    resume at the pause's end resumes the subscription — not a pause Square refused while the member
    goes on being charged."""
    member, tier = member_with_card
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    m.refresh_from_db()
    sub = square_fake.subscriptions[m.processor_subscription_id]
    square_fake.now += timedelta(days=20)
    services.pause_membership(membership=m, until=(square_fake.now + timedelta(days=21)).date(),
                              actor=services.Actor.system(), idempotency_key="trip", now=square_fake.now)
    work(square_fake.now)
    assert [d.status for d in processor_deliveries()][-1] == DeliveryStatus.DELIVERED
    assert [a["type"] for a in square_fake._actions[sub["id"]]] == ["PAUSE"]

    square_fake.now += timedelta(days=12)                  # the renewal: Square pauses instead of charging
    square_fake.apply_due_actions()
    assert sub["status"] == "PAUSED"
    square_fake.now += timedelta(days=9)                   # the pause's end
    assert services.resume_due_pauses(now=square_fake.now) == 1
    work(square_fake.now)
    square_fake.apply_due_actions()
    assert sub["status"] == "ACTIVE" and len(square_fake.invoices) == 1
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE


def test_an_enrollment_without_a_card_yet_makes_a_square_customer_the_clinic_can_recognise(glow, square_env,
                                                                                          square_fake):
    """Square refuses a customer with no name, email or phone: the member's name and email go with it
    (the clinic finds her in its Square dashboard; Square emails her its invoices), nothing else."""
    tier = glow[0]
    practice = tier.practice
    practice.processor, practice.automation_stage = Processor.SQUARE, AutomationStage.TIER_SYNC
    practice.save()
    member = MemberFactory(practice=practice, first_name="Nora", last_name="Vance", email="nora@example.com")
    enroll(member, tier, square_fake.now)
    work(square_fake.now)

    [delivery] = processor_deliveries()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.result.get("awaiting_card")
    [customer] = square_fake.customers.values()
    assert (customer["given_name"], customer["family_name"], customer["email_address"]) == (
        "Nora", "Vance", "nora@example.com")
    assert set(customer) - {"id", "created_at", "updated_at", "creation_source", "version"} == {
        "given_name", "family_name", "email_address", "reference_id"}
    member.refresh_from_db()
    assert member.processor_customer_id == customer["id"]


def test_a_subscription_made_at_square_whose_answer_was_lost_is_cancelled_with_the_membership(member_with_card,
                                                                                            square_fake):
    """Square creates the subscription but its answer is lost (a timeout): the enrollment waits for a
    retry. The desk cancels meanwhile; the cancellation has no subscription to cancel yet, and the
    retry finds the membership cancelled — the subscription Square made must end too, or Square
    charges the member every month for a membership she no longer has."""
    member, tier = member_with_card
    square_fake.lose_answer("POST", "/v2/subscriptions")
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    [made] = square_fake.subscriptions.values()
    services.cancel_membership(membership=m, actor=services.Actor.system(), idempotency_key="cancel",
                               now=square_fake.now)
    for _ in range(8):
        square_fake.now += timedelta(hours=2)
        work(square_fake.now)
    assert {d.status for d in processor_deliveries()} <= {DeliveryStatus.DELIVERED}
    assert made["canceled_date"]                           # ends when the month paid at creation ends
    m.refresh_from_db()
    assert m.status == MembershipStatus.CANCELLED


def test_a_subscription_square_deactivates_leaves_the_membership_open_and_comes_back_when_resumed(
        member_with_card, square_fake, client):
    """Square deactivates a subscription it cannot bill (the location cannot take payments, the
    customer was deleted or has no name or email) and ResumeSubscription brings it back: not an end.
    The member's membership is not cancelled (her balance not frozen) for it, and once the clinic
    resumes the subscription her next renewal refills as usual."""
    member, tier = member_with_card
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    m.refresh_from_db()
    sub = square_fake.subscriptions[m.processor_subscription_id]

    square_fake.now += timedelta(days=5)
    sub["status"], sub["version"] = "DEACTIVATED", sub["version"] + 1
    square_fake.emit("subscription.updated", "subscription", square_fake._public(sub))
    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE
    assert not EntitlementBalance.objects.filter(membership=m, frozen_at__isnull=False).exists()

    square_fake.now += timedelta(days=2)                   # the clinic resumes it at Square
    sub["status"], sub["version"] = "ACTIVE", sub["version"] + 1
    square_fake.emit("subscription.updated", "subscription", square_fake._public(sub))
    square_fake.now += timedelta(days=24)
    square_fake.bill(sub["id"])
    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    m.refresh_from_db()
    assert (m.status, m.cycle_number) == (MembershipStatus.ACTIVE, 2)
