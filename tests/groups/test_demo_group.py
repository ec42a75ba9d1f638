"""The demo builds a group so its pages can be seen: Glow Group with the demo practice (Pasadena) and
Glow Aesthetics Santa Monica (one clinic, its own members), a front desk there who redeemed for some
Pasadena members, and the group's owner — a group manager who signs in with the printed key, chooses a
clinic and sees both on the group dashboard."""

from __future__ import annotations

import base64
import re

from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp

from billing.group.figures import group_dashboard
from memberships.models import LedgerEntry, Location, Member, Organization, StaffProfile


def test_the_demo_group_has_two_practices_a_clinic_each_and_an_owner(db, capsys):
    call_command("seed_demo", members=12)
    out = capsys.readouterr().out
    group = Organization.objects.get(slug="glow-group")
    practices = list(group.practices.order_by("slug"))
    assert [p.slug for p in practices] == ["glow-aesthetics", "glow-santa-monica"]
    assert [Location.objects.filter(practice=p).count() for p in practices] == [1, 1]
    santa_monica = Location.objects.get(practice=practices[1])
    assert Member.objects.filter(practice=practices[1], home_location=santa_monica).count() == 30
    # Pasadena members redeemed at Santa Monica: the entries say where.
    assert LedgerEntry.objects.filter(kind="redeem", location=santa_monica,
                                      membership__member__practice=practices[0]).exists()
    board = group_dashboard(organization_id=group.pk, now=timezone.now())
    rows = {row.name: row for row in board.rows}
    assert rows["Glow Aesthetics — Pasadena"].members > 0 and rows["Glow Aesthetics — Santa Monica"].members > 0
    assert board.total.failed_open_count > 0

    assert "owner / demo-owner-2026" in out and "frontdesk-sm / demo-frontdesk-sm-2026" in out
    secret = re.search(r"owner's two-factor key: ([A-Z2-7]+)", out).group(1)
    client = Client()
    to_code = client.post(reverse("memberships:login"), {"username": "owner", "password": "demo-owner-2026"})
    after = client.post(to_code["Location"], {"code": f"{totp(base64.b32decode(secret)):06d}"})
    page = client.get(after["Location"])
    assert page.status_code == 200 and "Glow Aesthetics — Santa Monica" in page.content.decode()
    client.post(after["Location"], {"place": f"l{santa_monica.pk}"})
    assert StaffProfile.objects.get(user__username="owner").practice == practices[1]
    assert "Glow Aesthetics — Pasadena" in client.get(reverse("group:dashboard")).content.decode()

    counts = (Member.objects.count(), LedgerEntry.objects.count(), Organization.objects.count())
    call_command("seed_demo", members=12)                # again: nothing more
    assert (Member.objects.count(), LedgerEntry.objects.count(), Organization.objects.count()) == counts
