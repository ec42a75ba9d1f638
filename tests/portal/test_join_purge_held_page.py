"""What a person who paid sees when she comes back to the join's return page while her confirmation
is held: waiting, it says the payment is being confirmed (and promises no email nobody sends);
failed for a manager (she already has a membership), that the clinic finishes it and she need not
pay again — at Stripe and at Square; a join no longer on file gets the practice's own plain page
sending her to the clinic, not the staff site's "not found"."""

import pytest
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import JoinAttempt
from tests.factories import MemberFactory, active_membership
from tests.support.square_fake_checkout import SquareFakeCheckout
from tests.support.square_fixtures import square_env, square_fake  # noqa: F401  (fixtures)
from tests.support.stripe_events import post_event

from .join_support import form, online, processor  # noqa: F401  (fixtures)
from .test_join_confirmed import completed, drain, start
from .test_join_square import deliver_all, square_online, start_join  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def square_fake_class():
    return SquareFakeCheckout


def _page(client, ref) -> tuple[int, str]:
    answer = client.get(f"/join/glow/done/{ref}/")
    return answer.status_code, answer.content.decode()


def _already_a_member(online):
    nora = MemberFactory(practice=online["practice"], first_name="Nora", last_name="Newman",
                         email="nora.newman@example.com", phone="")
    return active_membership(tier=online["tier"], member=nora)


def test_a_stripe_join_held_for_the_clinic_says_so_and_promises_no_email(client, online, processor):
    _already_a_member(online)
    attempt = start(client, online)
    status, page = _page(client, attempt.ref)
    assert status == 200 and "confirming your payment" in page and "email you" not in page
    post_event(client, completed(attempt))
    drain()
    assert InboundEvent.objects.get().status == InboundStatus.FAILED
    status, page = _page(client, attempt.ref)
    assert status == 200 and "Your payment was received" in page and "finish setting up your membership" in page
    assert "do not need to pay again" in page and "email you" not in page and "Nora" not in page


def test_a_square_join_held_for_the_clinic_says_so(client, square_online, square_fake):
    _already_a_member(square_online)
    start_join(client, square_online)
    attempt = JoinAttempt.objects.get()
    square_fake.pay_link(attempt.checkout_ref, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    square_fake.fail_next(503, code="SERVICE_UNAVAILABLE", category="API_ERROR")
    inbox.process_due(now=timezone.now())                                   # Square down: it waits
    status, page = _page(client, attempt.ref)
    assert status == 200 and "confirming your payment" in page and "email you" not in page
    InboundEvent.objects.update(next_attempt_at=None)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    assert InboundEvent.objects.get(event_type="subscription.created").status == InboundStatus.FAILED
    status, page = _page(client, attempt.ref)
    assert status == 200 and "Your payment was received" in page and "finish setting up your membership" in page


def test_a_join_no_longer_on_file_sends_her_to_the_clinic_on_the_practices_own_page(client, online, processor):
    attempt = start(client, online)
    JoinAttempt.objects.all().delete()
    status, page = _page(client, attempt.ref)
    assert status == 404 and "call the clinic" in page and online["practice"].name in page
    assert "member search" not in page
