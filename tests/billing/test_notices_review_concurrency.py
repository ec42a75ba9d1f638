"""On PostgreSQL, with real threads: notices withdrawn while the membership was paused, planned again
after the resume by two scheduled runs at once while two outbox workers send — with the earlier
text deliveries of the same notices (held for a member's reply when the email path withdrew them)
due at the same moment as the new ones. Each member gets one renewal text and one renewal email,
at the amount of the tier she renews into."""

from datetime import timedelta

import pytest
from django.core import mail

from billing.models import ChannelStatus, MemberNotice, NoticeKind, NoticeStatus
from billing.notices import planning
from integrations import outbox
from integrations.messaging import holds, sms
from memberships import services
from tests.memberships.ledger_checks import hammer

from ..factories import TierFactory
from .test_notices import BOUNDARY, T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MEMBERS = 12
SYSTEM = services.Actor.system()


def test_notices_planned_again_and_sent_by_two_workers_go_once(enroll, notice_practice, monkeypatch):  # noqa: F811
    luxe = TierFactory(practice=notice_practice, code="luxe", name="Luxe", price_cents=34900)
    memberships = [enroll() for _ in range(MEMBERS)]
    night, dawn, morning = T0 + timedelta(hours=13), T0 + timedelta(hours=21), T0 + timedelta(days=1)
    run(night)                                                 # planned, waiting for 08:00
    for membership in memberships:
        services.pause_membership(membership=membership, until=BOUNDARY.date() + timedelta(days=30), actor=SYSTEM,
                                  idempotency_key=f"pause-{membership.pk}", now=dawn)
    monkeypatch.setattr(holds, "is_held", lambda member_id: True)   # texts wait; the emails withdraw
    run(morning)
    monkeypatch.setattr(holds, "is_held", lambda member_id: False)
    assert set(MemberNotice.objects.values_list("status", flat=True)) == {NoticeStatus.WITHDRAWN}
    resumed = morning + timedelta(minutes=5)
    for membership in memberships:
        services.resume_membership(membership=membership, actor=SYSTEM, idempotency_key=f"resume-{membership.pk}",
                                   now=resumed)
        services.change_tier(membership=membership, new_tier=luxe, effective="next_cycle", actor=SYSTEM,
                             idempotency_key=f"luxe-{membership.pk}", now=resumed)

    due = morning + holds.RECHECK                              # the old text deliveries are due again too

    def work(i):
        if i < 2:
            return planning.plan_notices(now=due, batch=5)
        return outbox.dispatch_due(now=due)

    for _ in range(3):                                         # planners and senders at once, a few rounds
        results, errors = hammer(n=4, fn=work)
        assert not errors, errors
    run(due)

    for membership in memberships:
        renewals = [m.body for m in sms.outbox if m.to == membership.member.phone and "renews" in m.body]
        assert len(renewals) == 1 and "for $349.00" in renewals[0]
        emails = [m for m in mail.outbox if m.to == [membership.member.email] and "renews" in m.subject]
        assert len(emails) == 1 and "charged $349.00" in emails[0].body
    assert set(MemberNotice.objects.values_list("kind", "status", "email_status", "sms_status")) == {
        (kind, NoticeStatus.SENT, ChannelStatus.SENT, ChannelStatus.SENT)
        for kind in (NoticeKind.UPCOMING_CHARGE, NoticeKind.EXPIRING_CREDIT)}
    assert MemberNotice.objects.count() == MEMBERS * 2
