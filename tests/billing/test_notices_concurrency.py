"""On PostgreSQL, with real threads: two scheduled runs of the notices at the same moment, both having
read the same due memberships before either writes, send each member one upcoming-charge and one
expiring-credit notice (one email and one SMS each): no notice, timeline event or delivery twice."""

import threading

import pytest
from django.db.models import Count

from billing.models import MemberNotice
from billing.notices import planning
from integrations.messaging import sms
from integrations.models import Delivery
from memberships.models import Event, EventKind
from tests.memberships.ledger_checks import hammer
from tests.support.waiting import PATIENCE

from .test_notices import T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MEMBERS = 30


def test_two_runs_at_once_send_each_notice_once(enroll, monkeypatch):  # noqa: F811
    memberships = [enroll() for _ in range(MEMBERS)]
    both_read = threading.Barrier(2)
    real = planning.due_membership_ids

    def read_then_wait(**kwargs):
        found = real(**kwargs)
        if len(found) == MEMBERS:                   # each run's first read sees every membership due
            both_read.wait(timeout=PATIENCE)
        return found

    monkeypatch.setattr(planning, "due_membership_ids", read_then_wait)
    results, errors = hammer(n=2, fn=lambda i: planning.plan_notices(now=T0, batch=7))
    assert not errors, errors
    assert sum(sum(r.values()) for r in results) == MEMBERS * 2
    assert MemberNotice.objects.count() == MEMBERS * 2
    assert not MemberNotice.objects.values("membership_id", "kind").annotate(n=Count("id")).filter(n__gt=1)
    queued = Event.objects.filter(kind=EventKind.NOTE, payload__has_key="notice_id")
    assert queued.count() == MEMBERS * 4                      # two notices, two channels each
    assert Delivery.objects.filter(destination="member_notice").count() == MEMBERS * 4

    results, errors = hammer(n=2, fn=lambda i: run(T0))       # two runs and two outbox drains at once
    assert not errors, errors
    assert MemberNotice.objects.count() == MEMBERS * 2
    for membership in memberships:
        assert len([m for m in sms.outbox if m.to == membership.member.phone]) == 2
