"""What the expiring-credit notices earn, as the manager reads it on the dashboard: of the credit the
notices named, how much the members used before the boundary and how much expired — by the month of
the boundary; redemptions after the boundary, of another service or reversed do not count."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from billing.metrics.nudges import nudge_effect
from billing.models import MemberNotice, NoticeKind, NoticeStatus
from memberships import services
from memberships.models import LedgerEntry

from .test_notices import BOUNDARY, T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def _redeem(membership, service, quantity, *, key, now):
    return services.redeem_entitlement(membership=membership, service=service, quantity=quantity,
                                       actor=services.Actor.system(), idempotency_key=key, now=now)


def test_the_share_of_named_credit_used_before_it_expired(enroll, glow):  # noqa: F811
    tier, facial, credit = glow
    used, ignored, reversed_ = enroll(), enroll(), enroll()
    run(T0)                                                    # each is told that $50 of credit expires Jan 10
    _redeem(used, credit, 3000, key="used-30", now=T0 + timedelta(days=1))
    _redeem(ignored, facial, 1, key="a-facial", now=T0 + timedelta(days=1))      # not the credit named
    entry = _redeem(reversed_, credit, 5000, key="all-50", now=T0 + timedelta(days=1))
    services.reverse_entry(entry=entry, actor=services.Actor.system(), reason="refunded", idempotency_key="undo",
                           now=T0 + timedelta(days=2))
    for membership in (used, ignored, reversed_):              # the renewal: what is left expires
        services.refill_entitlements(membership=membership, cycle_key=f"renew:{membership.pk}",
                                     actor=services.Actor.processor(), now=BOUNDARY)
    _redeem(used, credit, 5000, key="after", now=BOUNDARY + timedelta(hours=1))  # the new cycle's credit

    effect = nudge_effect(practice_id=used.member.practice_id, now=BOUNDARY + timedelta(days=1), months=2)
    january = next(m for m in effect.months if m.month.month == 1)
    assert (january.notices, january.nudged_cents, january.used_cents, january.expired_cents) == (3, 15000, 3000, 12000)
    assert january.share_display == "20%"
    expired = -sum(LedgerEntry.objects.filter(kind="expire", service=credit).values_list("quantity", flat=True))
    assert expired == january.expired_cents                   # what the ledger expired, to the cent
    assert effect.ahead == 0


def test_notices_not_sent_or_still_ahead_are_not_counted(enroll):  # noqa: F811
    skipped = enroll(email="", sms_consent=False)
    enroll()
    run(T0)
    assert MemberNotice.objects.get(membership=skipped, kind=NoticeKind.EXPIRING_CREDIT).status == NoticeStatus.SKIPPED
    before = nudge_effect(practice_id=skipped.member.practice_id, now=T0 + timedelta(days=1), months=2)
    assert (before.total.notices, before.ahead) == (0, 1)
    after = nudge_effect(practice_id=skipped.member.practice_id, now=BOUNDARY + timedelta(days=1), months=2)
    assert (after.total.notices, after.total.nudged_cents, after.ahead) == (1, 5000, 0)


def test_the_dashboard_shows_the_share(client, manager, practice, glow):
    tier, facial, credit = glow
    from tests.factories import MemberFactory, active_membership

    now = timezone.now()
    membership = active_membership(tier=tier, member=MemberFactory(practice=practice), now=now - timedelta(days=20))
    MemberNotice.objects.create(practice=practice, member=membership.member, membership=membership,
                                kind=NoticeKind.EXPIRING_CREDIT, boundary_date=(now - timedelta(days=2)).date(),
                                boundary_at=now - timedelta(days=2), nudged={str(credit.pk): 4000, str(facial.pk): 1},
                                status=NoticeStatus.SENT, email_status="sent", created_at=now - timedelta(days=9),
                                sent_at=now - timedelta(days=9))
    _redeem(membership, credit, 1000, key="in-time", now=now - timedelta(days=5))
    _redeem(membership, facial, 1, key="facial-in-time", now=now - timedelta(days=4))
    client.force_login(manager)
    html = client.get(reverse("manager:dashboard")).content.decode()
    section = strip_tags(html.split('data-testid="nudges-section"')[1].split("</section>")[0])
    # named: $40 of credit + one $250 facial = $290; used in time: $10 + the facial = $260 (90%)
    assert "$290.00" in section and "$260.00" in section and "$30.00" in section
    assert "90%" in section
