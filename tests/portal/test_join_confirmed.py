"""A join becomes a membership only when the processor confirms it (checkout.session.completed,
through the webhook and the inbox): exactly once however often it is reported or the return page is
reloaded, in either order with the first paid invoice, an existing member matched rather than
duplicated, the agreement's version, time and address kept, "Joined online" on the timeline."""

import pytest
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from integrations.processors.base import CheckoutCompleted
from integrations.processors.joining import confirm_join
from integrations.processors.stripe_events import parse_event
from memberships.models import (
    AgreementAcceptance,
    AuditLog,
    EntitlementBalance,
    Event,
    JoinAttempt,
    Member,
    Membership,
    MembershipStatus,
)
from tests.factories import MemberFactory, active_membership
from tests.memberships.ledger_checks import hammer
from tests.support.checkout import completed_event, completed_session
from tests.support.stripe_events import load_event, post_event

from .join_support import form, online, processor  # noqa: F401  (fixtures)

SUB = "sub_join0001"


def start(client, online, **changes) -> JoinAttempt:
    assert client.post("/join/glow/", form(online, **changes), REMOTE_ADDR="203.0.113.9").status_code == 302
    return JoinAttempt.objects.get()


def completed(attempt, *, event_id="evt_join_completed", session_id="cs_test_fake0001"):
    return completed_event(completed_session(join_ref=attempt.ref, session_id=session_id, subscription_ref=SUB),
                           event_id=event_id)


def first_invoice(event_id="evt_first_invoice"):
    return load_event("invoice_paid_first.json", subscription_ref=SUB, event_suffix=event_id)


def drain():
    return inbox.process_due(now=timezone.now())


def balances(membership):
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")}


def test_paid_join_becomes_an_active_membership_with_its_seeded_balance(client, online, processor):
    attempt = start(client, online, sms_consent="on")
    accepted_at = attempt.accepted_at
    assert post_event(client, completed(attempt)).status_code == 200
    assert post_event(client, first_invoice()).status_code == 200
    drain()
    membership = Membership.objects.get()
    member = membership.member
    assert membership.status == MembershipStatus.ACTIVE and membership.tier == online["tier"]
    assert membership.processor_subscription_id == SUB
    assert balances(membership) == {"hydrafacial": 1, "product-credit": 5000}
    assert (member.first_name, member.email, member.phone) == ("Nora", "nora.newman@example.com", "+14155550177")
    assert member.sms_consent and member.processor_customer_id == "cus_join0001"
    acceptance = AgreementAcceptance.objects.get()
    assert acceptance.agreement == online["agreement"] and acceptance.agreement.version == 2
    assert acceptance.accepted_at == accepted_at and acceptance.ip_address == "203.0.113.9"
    assert acceptance.sms_consent_text.startswith("I agree to receive text messages")
    assert acceptance.member == member and acceptance.membership == membership
    assert Event.objects.filter(member=member, summary__startswith="Joined online").count() == 1
    assert AuditLog.objects.filter(action="join_online", member_id=member.pk, ip_address="203.0.113.9").count() == 1
    assert not JoinAttempt.objects.exists()                 # the join's details are not kept twice
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}


def test_the_invoice_first_waits_and_applies_in_the_same_sweep_as_the_join(client, online, processor):
    attempt = start(client, online)
    post_event(client, first_invoice())
    drain()
    waiting = InboundEvent.objects.get()
    assert waiting.status == InboundStatus.RECEIVED and waiting.next_attempt_at > timezone.now()
    post_event(client, completed(attempt))
    drain()                                                  # one sweep, no waiting for the retry delay
    membership = Membership.objects.get()
    assert membership.status == MembershipStatus.ACTIVE
    assert balances(membership) == {"hydrafacial": 1, "product-credit": 5000}


def test_a_join_reported_again_or_the_page_reloaded_enrolls_once(client, online, processor):
    attempt = start(client, online)
    post_event(client, completed(attempt))
    post_event(client, completed(attempt))                                   # the same event again
    post_event(client, completed(attempt, event_id="evt_join_completed_2"))  # reported twice
    post_event(client, first_invoice())
    post_event(client, first_invoice())
    drain()
    for _ in range(3):
        client.get(f"/join/glow/done/{attempt.ref}/")
    fact = parse_event(completed(attempt)).fact
    confirm_join(fact, now=timezone.now())                                   # and once more, directly
    assert Membership.objects.count() == 1 and Member.objects.count() == 1
    assert AgreementAcceptance.objects.count() == 1
    assert balances(Membership.objects.get()) == {"hydrafacial": 1, "product-credit": 5000}
    assert Event.objects.filter(summary__startswith="Joined online").count() == 1
    assert "Your membership is active" in client.get(f"/join/glow/done/{attempt.ref}/").content.decode()


def test_an_existing_member_is_matched_by_email_not_duplicated(client, online, processor):
    known = MemberFactory(practice=online["practice"], first_name="Nora", last_name="Newman",
                          email="nora.newman@example.com", phone="", sms_consent=False)
    attempt = start(client, online, email="NORA.NEWMAN@example.com")
    post_event(client, completed(attempt))
    drain()
    assert Member.objects.count() == 1
    known.refresh_from_db()
    assert Membership.objects.get().member == known
    assert known.phone == "+14155550177"                     # a blank the desk left is filled, nothing overwritten
    assert not known.sms_consent                             # no box ticked: no consent


def test_an_existing_member_is_matched_by_mobile(client, online, processor):
    known = MemberFactory(practice=online["practice"], first_name="Nora", email="old.address@example.com",
                          phone="+14155550177")
    attempt = start(client, online)
    post_event(client, completed(attempt))
    drain()
    assert Member.objects.count() == 1 and Membership.objects.get().member == known
    known.refresh_from_db()
    assert known.email == "old.address@example.com"


def test_a_member_with_an_open_membership_is_left_for_a_manager(client, online, processor):
    known = MemberFactory(practice=online["practice"], first_name="Nora", email="nora.newman@example.com")
    active_membership(tier=online["tier"], member=known)
    attempt = start(client, online)
    post_event(client, completed(attempt))
    drain()
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.FAILED and "open membership" in row.error
    assert Membership.objects.count() == 1 and not AgreementAcceptance.objects.exists()
    assert JoinAttempt.objects.filter(ref=attempt.ref).exists()               # kept for the manager


def test_a_paid_join_left_for_a_manager_outlives_the_purge_of_abandoned_joins(client, online, processor, settings):
    """Paid, but its confirmation failed (she already has a membership): the hourly purge of joins
    abandoned before paying must not delete it (nor what she signed) while the event waits for the
    manager; a join abandoned before paying still goes."""
    from datetime import timedelta

    from portal.join.tasks import purge_abandoned_joins_task

    known = MemberFactory(practice=online["practice"], first_name="Nora", email="nora.newman@example.com")
    active_membership(tier=online["tier"], member=known)
    attempt = start(client, online)
    post_event(client, completed(attempt))
    drain()
    assert InboundEvent.objects.get().status == InboundStatus.FAILED
    client.post("/join/glow/", form(online, email="gone@example.com"), REMOTE_ADDR="203.0.113.9")
    JoinAttempt.objects.update(created_at=timezone.now() - timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS + 1))
    assert purge_abandoned_joins_task() == 1
    assert list(JoinAttempt.objects.values_list("ref", flat=True)) == [attempt.ref]


def test_a_join_no_longer_on_file_fails_visibly(client, online, processor):
    attempt = start(client, online)
    event = completed(attempt)
    JoinAttempt.objects.all().delete()                                        # purged
    post_event(client, event)
    drain()
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.FAILED and "not on file" in row.error
    assert not Membership.objects.exists()


def test_an_unpaid_or_open_checkout_enrolls_nothing(online):
    session = completed_session(join_ref="jn_x")
    for changes in ({"payment_status": "unpaid"}, {"status": "open"}, {"subscription": None}):
        event = completed_event({**session, **changes})
        assert not isinstance(parse_event(event).fact, CheckoutCompleted)
    fact = parse_event(completed_event(session)).fact
    assert fact == CheckoutCompleted(processor="stripe", checkout_ref="cs_test_join0001", join_ref="jn_x",
                                     customer_ref="cus_join0001", subscription_ref="sub_join0001",
                                     event_created=1764000100)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_confirming_one_join_at_once_enroll_once(client, online, processor):
    attempt = start(client, online)
    fact = parse_event(completed(attempt)).fact
    results, errors = hammer(lambda i: confirm_join(fact, now=timezone.now()).pk, 4)
    assert errors == [] and len(set(results)) == 1
    assert Membership.objects.count() == 1 and Member.objects.count() == 1
    assert AgreementAcceptance.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_joins_of_one_person_at_once_make_one_member(client, online, processor, settings):
    """Two tabs, two payments: one member (the member-number lock), the second join left for a
    manager (the member already has an open membership)."""
    settings.JOIN_RATE_LIMIT = 10
    start(client, online)
    client.post("/join/glow/", form(online), REMOTE_ADDR="203.0.113.9")
    first, second = JoinAttempt.objects.order_by("pk")
    facts = [parse_event(completed_event(completed_session(join_ref=a.ref, session_id=f"cs_test_{n}",
                                                           subscription_ref=f"sub_{n}"))).fact
             for n, a in enumerate((first, second))]
    results, errors = hammer(lambda i: confirm_join(facts[i], now=timezone.now()).pk, 2)
    assert len(results) == 1 and len(errors) == 1 and "open membership" in str(errors[0])
    assert Member.objects.count() == 1 and Membership.objects.count() == 1
