"""The member page's "send me a link" requests (the address typed, the client's IP address) and the
links they produced are deleted MEMBER_LINK_RETENTION_DAYS after they were asked for, by a daily job:
what the rate limits count (the last hour) stays, and so do the audit rows of a sign-in (they hold
no address) and the member's timeline."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from memberships.models import AuditLog, Event, EventKind
from portal.me import links
from portal.me.tasks import purge_old_member_links
from portal.models import LinkRequest, MemberLink
from tests.factories import ana_garcia
from tests.portal.me_support import send_link

pytestmark = pytest.mark.django_db


@pytest.fixture
def ana(glow):
    member, membership = ana_garcia(glow[0])
    return member


def test_requests_and_links_past_the_retention_are_deleted_and_the_audit_and_timeline_stay(client, ana, settings):
    settings.MEMBER_LINK_RETENTION_DAYS = 30
    now = timezone.now()
    then = now - timedelta(days=31)
    with time_machine.travel(then, tick=False):
        [path] = send_link(ana.email, now=then)
        assert client.post(path)["Location"] == reverse("portal:me:page")         # she signed in then
    assert links.ask_for_link(raw_address="stranger@example.com", ip="198.51.100.7", now=then) == links.OK
    recent = now - timedelta(days=29)
    send_link(ana.email, now=recent)
    recent_link = MemberLink.objects.get(created_at=recent)
    assert LinkRequest.objects.count() == 3 and MemberLink.objects.count() == 2

    assert purge_old_member_links() == 3                       # her old link, her old request, the stranger's
    assert list(LinkRequest.objects.values_list("created_at", flat=True)) == [recent]
    assert list(MemberLink.objects.all()) == [recent_link]
    signin = AuditLog.objects.get(member=ana, action="member_signin")
    assert signin.created_at == then
    held = [str(value) for value in AuditLog.objects.values_list("object_id", "detail", "ip_address", "action")]
    assert not any(ana.email.lower() in text.lower() or "stranger@example.com" in text for text in held)
    assert Event.objects.filter(member=ana, kind=EventKind.MEMBER_LINK).count() == 2
    assert purge_old_member_links() == 0                       # a second run changes nothing


def test_a_request_never_handled_goes_with_the_address_it_kept(db, settings):
    """The queue was down: the request still holds the address typed (encrypted); past the retention
    it goes too."""
    settings.MEMBER_LINK_RETENTION_DAYS = 30
    old = timezone.now() - timedelta(days=31)
    assert links.ask_for_link(raw_address="nobody@example.com", ip="198.51.100.7", now=old) == links.OK
    kept = LinkRequest.objects.get()
    assert kept.handled_at is None and kept.address == "nobody@example.com"
    assert links.purge_old_links(now=timezone.now()) == (0, 1) and not LinkRequest.objects.exists()


def test_the_rate_limits_keep_counting_the_last_hour_whatever_the_setting(client, db, settings):
    """A retention below a day is taken as a day: the purge never deletes what the per-address and
    per-IP limits are still counting."""
    settings.MEMBER_LINK_RETENTION_DAYS = 0
    for _ in range(3):
        assert client.post(reverse("portal:me:link"), {"address": "kim@example.com"}).status_code == 200
    assert purge_old_member_links() == 0 and LinkRequest.objects.count() == 3
    assert client.post(reverse("portal:me:link"), {"address": "kim@example.com"}).status_code == 429


def test_the_purge_goes_by_batches(db, settings):
    settings.MEMBER_LINK_RETENTION_DAYS = 30
    old = timezone.now() - timedelta(days=40)
    for i in range(5):
        links.ask_for_link(raw_address=f"p{i}@example.com", ip=f"198.51.100.{i}", now=old + timedelta(minutes=i))
    assert links.purge_old_links(now=timezone.now(), batch_size=2) == (0, 5) and not LinkRequest.objects.exists()


def test_the_job_is_scheduled_daily():
    from django_q.models import Schedule

    from medspa.schedules import every_schedule

    jobs = {fields["func"]: fields for _, fields in every_schedule()}
    assert jobs["portal.me.tasks.purge_old_member_links"]["schedule_type"] == Schedule.DAILY
