"""A join paid on Square's page whose confirmation is held — Square's `subscription.created` waits
(Square could not be reached) or failed for a manager (she already has a membership) — is not a join
abandoned before paying: the hourly purge keeps it, with what she signed and its payment link (the
confirmation reads the link to find the join), until the confirmation goes through; then it enrolls
her once. A join never paid still goes, its link deleted at Square. On SQLite and PostgreSQL; the
purge running while a worker confirms the join, on PostgreSQL with real threads."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships import services
from memberships.models import AgreementAcceptance, Event, JoinAttempt, Member, Membership, MembershipStatus
from portal.join.tasks import purge_abandoned_joins_task
from tests.factories import MemberFactory, active_membership
from tests.support.square_fake_checkout import SquareFakeCheckout
from tests.support.square_fixtures import square_env, square_fake  # noqa: F401  (fixtures)

from .join_support import form, online  # noqa: F401  (fixture)
from .test_join_square import deliver_all, square_online, start_join  # noqa: F401  (fixture)


@pytest.fixture
def square_fake_class():
    return SquareFakeCheckout


def _age_joins(settings) -> None:
    """The retention passes: every join on file was started before it."""
    JoinAttempt.objects.update(created_at=timezone.now() - timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS + 1))


def _subscription_created() -> InboundEvent:
    return InboundEvent.objects.get(event_type="subscription.created")


def _joined(membership) -> int:
    return Event.objects.filter(membership=membership, summary__startswith="Joined online").count()


@pytest.mark.django_db
def test_a_paid_square_join_left_for_a_manager_outlives_the_purge_and_enrolls_once_the_manager_reprocesses(
        client, square_online, square_fake, settings):
    """Nora still has a membership when she joins on Square: the confirmation fails for a manager. The
    purge after the retention deletes the join abandoned before paying beside hers, not hers; the
    manager ends the old membership and re-processes the event: she is enrolled with what she signed."""
    settings.JOIN_RATE_LIMIT = 10
    nora = MemberFactory(practice=square_online["practice"], first_name="Nora", last_name="Newman",
                         email="nora.newman@example.com", phone="")
    old = active_membership(tier=square_online["tier"], member=nora)
    start_join(client, square_online)
    paid_join = JoinAttempt.objects.get()
    sub_id = square_fake.pay_link(paid_join.checkout_ref, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    held = _subscription_created()
    assert held.status == InboundStatus.FAILED and "open membership" in held.error
    start_join(client, square_online, email="left.at.the.page@example.com")            # never paid
    unpaid_join = JoinAttempt.objects.exclude(pk=paid_join.pk).get()
    _age_joins(settings)

    assert purge_abandoned_joins_task() == 1
    assert list(JoinAttempt.objects.values_list("pk", flat=True)) == [paid_join.pk]
    assert paid_join.checkout_ref in square_fake.payment_links                           # the paid link stays
    assert unpaid_join.checkout_ref not in square_fake.payment_links                     # nobody pays that one now
    assert purge_abandoned_joins_task() == 0 and JoinAttempt.objects.filter(pk=paid_join.pk).exists()
    assert client.get(f"/join/glow/done/{paid_join.ref}/").status_code == 200

    services.cancel_membership(membership=old, actor=services.Actor.system(), idempotency_key="manager-ends-old",
                               now=timezone.now())
    assert inbox.reprocess(held, now=timezone.now()) == InboundStatus.PROCESSED
    for _ in range(2):
        inbox.process_due(now=timezone.now())
    joined = Membership.objects.get(processor_subscription_id=sub_id)
    assert joined.member == nora and joined.status == MembershipStatus.ACTIVE and _joined(joined) == 1
    acceptance = AgreementAcceptance.objects.get()
    assert (acceptance.membership, acceptance.join_ref, acceptance.agreement) == (
        joined, paid_join.ref, square_online["agreement"])
    assert not JoinAttempt.objects.exists()


@pytest.mark.django_db
def test_a_paid_square_join_whose_confirmation_waits_for_square_outlives_the_purge(client, square_online, square_fake,
                                                                                   settings):
    """Square cannot be reached when the worker reads the new subscription's customer: the event
    waits. The purge after the retention keeps the join (and asks Square nothing it cannot answer
    later); once Square answers, she is enrolled."""
    start_join(client, square_online)
    paid_join = JoinAttempt.objects.get()
    sub_id = square_fake.pay_link(paid_join.checkout_ref, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    square_fake.fail_next(503, code="SERVICE_UNAVAILABLE", category="API_ERROR")
    inbox.process_due(now=timezone.now())
    assert _subscription_created().status == InboundStatus.RECEIVED
    assert not Membership.objects.exists()
    _age_joins(settings)

    assert purge_abandoned_joins_task() == 0
    assert JoinAttempt.objects.filter(pk=paid_join.pk).exists() and paid_join.checkout_ref in square_fake.payment_links

    InboundEvent.objects.update(next_attempt_at=None)                                     # its retry is due
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    joined = Membership.objects.get()
    assert joined.processor_subscription_id == sub_id and joined.status == MembershipStatus.ACTIVE
    assert AgreementAcceptance.objects.get().join_ref == paid_join.ref and not JoinAttempt.objects.exists()


@pytest.mark.django_db
def test_a_paid_square_join_is_purged_once_nothing_waits_to_confirm_it(client, square_online, square_fake, settings):
    """Kept only while a confirmation is unprocessed: once the failed event is reduced to ids and
    outcome (INBOX_RETENTION_DAYS), nothing can confirm the join any more and its details go at the
    next purge like any other's."""
    from integrations.retention import reduce_old_payloads

    nora = MemberFactory(practice=square_online["practice"], first_name="Nora", last_name="Newman",
                         email="nora.newman@example.com", phone="")
    active_membership(tier=square_online["tier"], member=nora)
    start_join(client, square_online)
    square_fake.pay_link(JoinAttempt.objects.get().checkout_ref, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    _age_joins(settings)
    assert purge_abandoned_joins_task() == 0
    assert purge_abandoned_joins_task() == 0
    assert reduce_old_payloads(now=timezone.now() + timedelta(days=settings.INBOX_RETENTION_DAYS + 1)) == 1
    assert purge_abandoned_joins_task() == 1 and not JoinAttempt.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_purge_running_while_a_worker_confirms_a_paid_square_join_loses_nothing(client, square_online,
                                                                                   square_fake, settings):
    """The hourly purge and the worker taking Square's `subscription.created` run at the same moment
    (PostgreSQL, real threads), the join older than the retention: whichever goes first, she is
    enrolled once with what she signed, and the purge deletes nothing of hers."""
    from tests.memberships.ledger_checks import hammer

    start_join(client, square_online)
    paid_join = JoinAttempt.objects.get()
    sub_id = square_fake.pay_link(paid_join.checkout_ref, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    _age_joins(settings)

    def run(i):
        if i == 0:
            return ("purged", purge_abandoned_joins_task())
        return ("worker", inbox.process_due(now=timezone.now()))

    results, errors = hammer(run, 2)
    assert errors == [] and dict(results)["purged"] == 0
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    joined = Membership.objects.get()
    assert joined.processor_subscription_id == sub_id and joined.status == MembershipStatus.ACTIVE
    assert Member.objects.count() == 1 and _joined(joined) == 1
    assert AgreementAcceptance.objects.get().join_ref == paid_join.ref and not JoinAttempt.objects.exists()
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}
