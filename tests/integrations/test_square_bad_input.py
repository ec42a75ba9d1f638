"""Bad input from or about Square, each a clear outcome and never a half-written ledger (the rest is
covered elsewhere: 429/500 retried with backoff and a forgotten subscription's cancellation in
processors/test_square_sync.py, an unknown subscription's payment and a broken event in
test_square_end_to_end.py, reads refused in test_square_reconciliation.py):

- an expired access token (401): the enrollment's delivery is dead-lettered at once with the reason
  (renew SQUARE_ACCESS_TOKEN), Square is not asked again, nothing is created there or recorded here;
- a plan Square no longer has (a tier version's variation deleted at Square): the same, naming it;
- a dunning message's link while Square refuses our token: our card page, without the way on to the
  invoice's page it could not read."""

from urllib.parse import urlparse

import pytest

from billing.dunning.links import card_update_link
from billing.models import DunningCase
from integrations.models import DeliveryStatus
from memberships.models import EntitlementBalance, MembershipStatus
from tests.integrations.processors.test_square_sync import member_with_card  # noqa: F401  (fixture)
from tests.integrations.processors.test_square_sync import enroll, processor_deliveries, work
from tests.integrations.test_square_dunning import way_on
from tests.integrations.test_square_end_to_end import at, deliver
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_an_expired_token_dead_letters_the_enrollment_with_the_reason(member_with_card, square_fake):
    member, tier = member_with_card
    square_fake.fail_next(401, "ACCESS_TOKEN_EXPIRED", "AUTHENTICATION_ERROR")
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)

    [delivery] = processor_deliveries()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert "renew SQUARE_ACCESS_TOKEN" in delivery.last_error and "ACCESS_TOKEN_EXPIRED" in delivery.last_error
    asked = len(square_fake.requests)
    work(square_fake.now.replace(hour=23))
    assert len(square_fake.requests) == asked                       # not retried: a person must act
    m.refresh_from_db()
    assert m.processor_subscription_id == "" and square_fake.subscriptions == {}
    assert m.status == MembershipStatus.PENDING
    assert not EntitlementBalance.objects.filter(membership=m).exclude(balance=0).exists()


def test_a_plan_square_no_longer_has_fails_the_enrollment_naming_it(member_with_card, square_fake):
    member, tier = member_with_card
    tier.processor_price_id = "RETIRED_VARIATION"              # deleted at Square after it was made
    tier.save(update_fields=["processor_price_id"])
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)

    [delivery] = processor_deliveries()
    assert delivery.status == DeliveryStatus.FAILED
    assert "NOT_FOUND" in delivery.last_error and "RETIRED_VARIATION" in delivery.last_error
    m.refresh_from_db()
    assert m.processor_subscription_id == "" and square_fake.subscriptions == {}


def test_a_dunning_link_while_square_refuses_our_token_says_to_try_later(member_with_card, square, square_fake,
                                                                        client):
    member, tier = member_with_card
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    m.refresh_from_db()
    deliver(square_fake, client)
    work(square_fake.now)
    square_fake.now = at("2026-02-01")
    invoice = square_fake.bill(m.processor_subscription_id, fail_code="GENERIC_DECLINE")
    deliver(square_fake, client)
    work(square_fake.now)
    case = DunningCase.objects.get(invoice_ref=invoice)

    square_fake.fail_next(401, "ACCESS_TOKEN_EXPIRED", "AUTHENTICATION_ERROR")
    page = client.get(urlparse(card_update_link(case.pk)).path)
    assert page.status_code == 302 and way_on(page) == ""          # the card page, with no way on to pay
    case.refresh_from_db()
    assert case.status == "open"
