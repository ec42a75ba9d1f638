"""A Stripe subscription a manager set at the Dashboard to end on a date (`cancel_at`, with
`cancel_at_period_end` false): on or before the current period's end there is no renewal, so the
ledger records it as ending at the period end (as Square's `canceled_date`), and the member is not
told her membership renews, or a planned notice is withdrawn. A date after the period end leaves
this renewal as it is. The event delivered twice, or before the subscription's other events,
converges the same. Events are the recorded current-shape `customer.subscription.updated`."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from billing.models import MemberNotice, NoticeKind, NoticeStatus, ProcessorSubscription
from integrations import inbox
from integrations.messaging import sms
from integrations.models import InboundEvent, InboundStatus
from integrations.processors.stripe_events import parse_event
from memberships import services
from memberships.models import Membership, MembershipStatus
from tests.billing.test_notices import BOUNDARY, T0, enroll, messaging, notice_practice, run  # noqa: F401
from tests.factories import MemberFactory
from tests.integrations.test_stripe_webhooks import process_all
from tests.support.stripe_events import FIXTURE_SUBSCRIPTION, load_event, post_event

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc
CANCEL_AT = "customer_subscription_updated_cancel_at.json"
ENDS = datetime(2026, 1, 19, 16, 0, tzinfo=UTC)           # the fixture's `cancel_at`
PERIOD_END = datetime(2026, 1, 23, 16, 0, tzinfo=UTC)     # its item's `current_period_end`


def _cancel_at_event(membership, *, cancel_at=None, period_end=None):
    event = load_event(CANCEL_AT, membership=membership)
    sub = event["data"]["object"]
    if cancel_at is not None:
        sub["cancel_at"] = int(cancel_at.timestamp())
    if period_end is not None:
        sub["items"]["data"][0]["current_period_end"] = int(period_end.timestamp())
    return event


def _subscription():
    return ProcessorSubscription.objects.get(processor="stripe", processor_subscription_id=FIXTURE_SUBSCRIPTION)


@pytest.fixture
def stripe_membership(glow):
    tier, _, _ = glow
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=timezone.now(),
                                  processor_subscription_id=FIXTURE_SUBSCRIPTION)


def test_the_recorded_event_says_the_subscription_ends_at_this_period():
    fact = parse_event(load_event(CANCEL_AT)).fact
    assert fact.status == "active" and fact.current_period_end == PERIOD_END
    assert fact.cancel_at_period_end is True


@pytest.mark.parametrize("cancel_at, ends", [
    (PERIOD_END, True),                                   # the period's own end
    (PERIOD_END + timedelta(seconds=1), False),           # after it: this renewal still happens
    (PERIOD_END + timedelta(days=40), False),
])
def test_a_date_after_the_period_end_leaves_this_renewal(cancel_at, ends):
    event = load_event(CANCEL_AT)
    event["data"]["object"]["cancel_at"] = int(cancel_at.timestamp())
    assert parse_event(event).fact.cancel_at_period_end is ends


def test_taking_the_date_off_again_renews():
    event = load_event(CANCEL_AT)
    event["data"]["object"]["cancel_at"] = None
    assert parse_event(event).fact.cancel_at_period_end is False


def test_the_ledger_knows_the_subscription_ends(client, stripe_membership):
    post_event(client, load_event("invoice_paid_first.json", membership=stripe_membership))
    post_event(client, load_event(CANCEL_AT, membership=stripe_membership))
    process_all()
    sub = _subscription()
    assert sub.cancel_at_period_end is True and sub.status == "active"
    assert sub.current_period_end == PERIOD_END
    stripe_membership.refresh_from_db()
    assert stripe_membership.status == MembershipStatus.ACTIVE       # she keeps it until then


@pytest.mark.parametrize("order", [
    ["cancel_at", "first", "cancel_at", "active"],
    ["cancel_at", "active", "first", "cancel_at"],
    ["first", "active", "cancel_at", "cancel_at"],
    ["cancel_at", "cancel_at", "active", "active", "first"],
])
def test_twice_or_before_the_other_events_converges_the_same(client, stripe_membership, order):
    """The older `active` update (no end date) arriving after it is stale and changes nothing."""
    events = {"cancel_at": CANCEL_AT, "first": "invoice_paid_first.json",
              "active": "customer_subscription_updated_active.json"}
    for i, name in enumerate(order):
        post_event(client, load_event(events[name], membership=stripe_membership))
        if i % 2:
            process_all()
    process_all()
    sub = _subscription()
    assert sub.cancel_at_period_end is True and sub.status == "active"
    stripe_membership.refresh_from_db()
    assert stripe_membership.status == MembershipStatus.ACTIVE and stripe_membership.cycle_number == 1


# --- the member's "your membership renews" notice --------------------------------------------------

def _renewals(membership):
    return [m.body for m in sms.outbox if m.to == membership.member.phone and "renews" in m.body]


def _on_fixture_subscription(membership):
    Membership.objects.filter(pk=membership.pk).update(processor_subscription_id=FIXTURE_SUBSCRIPTION)


def test_no_renewal_notice_for_a_subscription_ending_on_a_date(client, enroll):  # noqa: F811
    membership = enroll()
    _on_fixture_subscription(membership)
    post_event(client, _cancel_at_event(membership, cancel_at=BOUNDARY - timedelta(days=1), period_end=BOUNDARY))
    process_all(T0)
    run(T0)
    run(T0 + timedelta(hours=5))
    assert _renewals(membership) == []
    assert not MemberNotice.objects.filter(membership=membership, kind=NoticeKind.UPCOMING_CHARGE).exists()
    assert MemberNotice.objects.filter(membership=membership, kind=NoticeKind.EXPIRING_CREDIT).exists()


def test_a_planned_renewal_notice_is_withdrawn_when_the_date_is_set(client, enroll):  # noqa: F811
    membership = enroll()
    _on_fixture_subscription(membership)
    run(T0 + timedelta(hours=13))                         # planned at night, to go in the morning
    notice = MemberNotice.objects.get(membership=membership, kind=NoticeKind.UPCOMING_CHARGE)
    assert notice.status != NoticeStatus.WITHDRAWN and _renewals(membership) == []
    post_event(client, _cancel_at_event(membership, cancel_at=BOUNDARY, period_end=BOUNDARY))
    process_all(T0 + timedelta(hours=14))
    run(T0 + timedelta(days=1))
    assert _renewals(membership) == []
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.WITHDRAWN


def test_a_date_after_the_renewal_still_gets_the_notice(client, enroll):  # noqa: F811
    membership = enroll()
    _on_fixture_subscription(membership)
    post_event(client, _cancel_at_event(membership, cancel_at=BOUNDARY + timedelta(days=20), period_end=BOUNDARY))
    process_all(T0)
    run(T0)
    assert len(_renewals(membership)) == 1 and "renews on Jan 10" in _renewals(membership)[0]


# --- any order, any repetition ---------------------------------------------------------------------

HISTORY = ["invoice_paid_first.json", "customer_subscription_updated_paused.json",
           "customer_subscription_updated_active.json", CANCEL_AT]     # in the order Stripe made them


def _state(membership):
    membership.refresh_from_db()
    sub = _subscription()
    return dict(status=membership.status, cycle=membership.cycle_number, sub_status=sub.status,
                ending=sub.cancel_at_period_end, paused=sub.collection_paused,
                period_end=sub.current_period_end, last=sub.last_event_created)


def _deliver(membership, names, process_after):
    """Stored as the webhook stores them, processed after the deliveries `process_after` names."""
    now = timezone.now()
    for i, name in enumerate(names):
        inbox.store_event(source="stripe", event=load_event(name, membership=membership), handled=True, now=now)
        if i in process_after:
            process_all(now)
    process_all(now)
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}


def _membership(tier):
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=timezone.now(),
                                  processor_subscription_id=FIXTURE_SUBSCRIPTION)


def test_any_order_and_repetition_ends_as_the_history_in_order(glow):
    tier = glow[0]
    with transaction.atomic():
        _deliver(_membership(tier), HISTORY, process_after=set(range(len(HISTORY))))
        reference = _state(Membership.objects.get(processor_subscription_id=FIXTURE_SUBSCRIPTION))
        transaction.set_rollback(True)
    assert reference["ending"] is True and reference["sub_status"] == "active"

    @hypothesis_settings(max_examples=25, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(deliveries=st.lists(st.sampled_from(HISTORY), max_size=len(HISTORY)).flatmap(
               lambda again: st.permutations(HISTORY + again)),    # each once, some twice, any order
           process_after=st.sets(st.integers(0, 2 * len(HISTORY) - 1)))
    def check(deliveries, process_after):
        with transaction.atomic():
            membership = _membership(tier)
            _deliver(membership, deliveries, process_after)
            assert _state(membership) == reference, deliveries
            transaction.set_rollback(True)

    check()
