"""The SMS replies page's audit rows say where the person who read them works: each member shown is
one row at the desk's location (as every other page's read), and the decision's row is at that
location too. Another practice's holds are neither shown nor audited."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.messaging.holds import open_hold
from memberships.models import AuditLog, StaffProfile
from memberships.roles import FRONT_DESK
from tests.factories import MemberFactory, staff_user

from .group_world import build_group


@pytest.mark.django_db
def test_the_replies_page_audits_each_member_shown_at_the_desks_location(client):
    world = build_group()
    desk = staff_user(FRONT_DESK, world.glow, username="desk")
    StaffProfile.objects.filter(user=desk).update(location=world.uptown)
    ours = [MemberFactory(practice=world.glow) for _ in range(2)]
    theirs = MemberFactory(practice=world.bloom)
    now = timezone.now()
    holds = [open_hold(member=m, inbound=None, text="please no more texts", reason="no more", now=now)
             for m in [*ours, theirs]]

    client.force_login(desk)
    page = client.get(reverse("sms_replies:list"))
    assert page.status_code == 200
    rows = AuditLog.objects.filter(action="sms_replies_view")
    assert sorted(rows.values_list("member_id", flat=True)) == sorted(m.pk for m in ours)
    assert {(row.user_id, row.location_id) for row in rows} == {(desk.pk, world.uptown.pk)}

    client.post(reverse("sms_replies:clear", args=[holds[0].pk]), {"decision": "resume"})
    decided = AuditLog.objects.get(action="sms_hold_clear")
    assert (decided.member_id, decided.location_id) == (ours[0].pk, world.uptown.pk)
    assert client.post(reverse("sms_replies:clear", args=[holds[2].pk]), {"decision": "resume"}).status_code == 404
