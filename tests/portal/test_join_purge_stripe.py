"""The hourly purge of joins abandoned before paying and a worker confirming a Stripe join paid at
Checkout, at the same moment (PostgreSQL, real threads), the join older than the retention:
whichever goes first, she is enrolled once with what she signed and the purge deletes nothing of
hers; a join never paid beside it still goes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import InboundEvent, InboundStatus
from memberships.models import AgreementAcceptance, JoinAttempt, Member, Membership
from portal.join.tasks import purge_abandoned_joins_task
from tests.memberships.ledger_checks import hammer
from tests.support.stripe_events import post_event

from .join_support import form, online, processor  # noqa: F401  (fixtures)
from .test_join_confirmed import completed, drain


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_purge_running_while_a_worker_confirms_a_paid_stripe_join_loses_nothing(client, online, processor,
                                                                                   settings):
    settings.JOIN_RATE_LIMIT = 10
    assert client.post("/join/glow/", form(online), REMOTE_ADDR="203.0.113.9").status_code == 302
    paid = JoinAttempt.objects.get()
    client.post("/join/glow/", form(online, email="left.at.the.page@example.com"), REMOTE_ADDR="203.0.113.9")
    JoinAttempt.objects.update(created_at=timezone.now() - timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS + 1))
    post_event(client, completed(paid))

    def run(i):
        return ("purged", purge_abandoned_joins_task()) if i == 0 else ("worker", drain())

    results, errors = hammer(run, 2)
    assert errors == [] and dict(results)["purged"] == 1                  # the join never paid, not hers
    drain()
    membership = Membership.objects.get()
    assert Member.objects.count() == 1 and AgreementAcceptance.objects.get().join_ref == paid.ref
    assert membership.processor_subscription_id == "sub_join0001" and not JoinAttempt.objects.exists()
    assert InboundEvent.objects.get().status == InboundStatus.PROCESSED
