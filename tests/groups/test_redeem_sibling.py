"""Redeeming at another location of the group: the front desk of a sibling practice opens a member of
the group (the chart panel, the tier's rule) and redeems when the tier allows — exactly once, with the
entry recording where; a tier redeemable only at the home location is refused with the place named,
writing nothing; a practice of another group gets 404 everywhere."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from memberships import services
from memberships.errors import NotRedeemableHere
from memberships.models import AuditLog, EntitlementBalance, LedgerEntry, RedeemableAt

from .redeem_world import build, redeem_url, signed_in, visit_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    return build()


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html)
    assert match, f"no field {name} in the page"
    return match.group(1)


def _redeem_form(client, member, service, quantity="1"):
    html = client.get(visit_url(member)).content.decode()
    return {"service": service.pk, "quantity": quantity, "token": _field(html, "token"),
            "version": _field(html, "version")}


def _balance(world, service) -> int:
    return EntitlementBalance.objects.get(membership=world.membership, service=service).balance


def _home_only(world):
    world.tier.redeemable_at = RedeemableAt.HOME
    world.tier.save(update_fields=["redeemable_at"])


def test_sibling_desk_sees_the_chart_panel_and_the_read_is_audited_with_its_location(world):
    harbor = signed_in(world.harbor_desk)
    response = harbor.get(visit_url(world.ana))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Ana Garcia" in body and "Glow" in body and "Pasadena" in body
    assert "Redeemable at any location of the group" in body
    assert f'data-testid="available-{world.facial.pk}">1<' in body
    assert 'id="redeem-button"' in body
    # the member's other pages are not offered (and stay 404: see below)
    assert reverse("memberships:chart", args=[world.ana.pk]) not in body
    assert "Cancel membership" not in body
    read = AuditLog.objects.get(action="view_visit", member=world.ana)
    assert read.user == world.harbor_desk and read.location == world.harbor


def test_sibling_desk_redeems_a_group_tier_once_and_the_entry_records_harbor(world):
    harbor = signed_in(world.harbor_desk)
    form = _redeem_form(harbor, world.ana, world.facial)
    first = harbor.post(redeem_url(world.ana), form)
    again = harbor.post(redeem_url(world.ana), form)             # a double click: the same token
    assert first.status_code == again.status_code == 302
    entries = LedgerEntry.objects.filter(membership=world.membership, service=world.facial, kind="redeem")
    assert [(e.quantity, e.location_id, e.actor_user_id) for e in entries] == [
        (-1, world.harbor.pk, world.harbor_desk.pk)]
    assert _balance(world, world.facial) == 0
    audit = AuditLog.objects.get(action="redeem", member=world.ana)
    assert audit.location == world.harbor and audit.user == world.harbor_desk
    page = harbor.get(visit_url(world.ana)).content.decode()
    assert "already recorded" in page or "Redeemed" in page
    # the home practice's chart says where it happened
    chart = signed_in(world.pasadena_desk).get(reverse("memberships:chart", args=[world.ana.pk])).content.decode()
    assert 'data-testid="where">at Harbor<' in chart


def test_home_only_tier_is_refused_at_a_sibling_naming_the_home_location_and_writes_nothing(world):
    _home_only(world)
    harbor = signed_in(world.harbor_desk)
    page = harbor.get(visit_url(world.ana)).content.decode()
    assert "Redeemable only at Pasadena" in page
    assert "Glow&#x27;s benefits are redeemable only at Pasadena." in page
    assert 'id="redeem-button"' not in page
    # a form posted anyway (opened before the tier changed, or crafted) is refused too
    form = {"service": world.facial.pk, "quantity": "1", "token": "a" * 32, "version": "0"}
    before = (LedgerEntry.objects.count(), AuditLog.objects.filter(action="redeem").count())
    response = harbor.post(redeem_url(world.ana), form)
    assert response.status_code == 400
    assert "redeemable only at Pasadena" in response.content.decode()
    assert (LedgerEntry.objects.count(), AuditLog.objects.filter(action="redeem").count()) == before
    assert _balance(world, world.facial) == 1


def test_home_only_tier_redeems_at_home_and_is_refused_at_another_clinic_of_the_same_practice(world):
    _home_only(world)
    now = timezone.now()
    with pytest.raises(NotRedeemableHere, match="Glow's benefits are redeemable only at Pasadena"):
        services.redeem_at_desk(membership=world.membership, service=world.credit, quantity=100,
                                actor=services.Actor.staff(world.old_town_desk), idempotency_key="old-town",
                                chart_version=10**9, now=now)
    with pytest.raises(NotRedeemableHere):   # the hold of a booking is refused the same way
        services.reserve_entitlement(membership=world.membership, service=world.facial,
                                     actor=services.Actor.staff(world.harbor_desk), idempotency_key="h", now=now)
    assert not LedgerEntry.objects.filter(idempotency_key__in=["old-town"]).exists()
    done = services.redeem_at_desk(membership=world.membership, service=world.credit, quantity=100,
                                   actor=services.Actor.staff(world.pasadena_desk), idempotency_key="home",
                                   chart_version=10**9, now=now)
    assert done.entry.location_id == world.pasadena.pk and _balance(world, world.credit) == 4900
    # the record's own redemptions (no desk) are not judged by the rule
    services.redeem_entitlement(membership=world.membership, service=world.credit, quantity=100,
                                actor=services.Actor.record(), idempotency_key="record", now=now)
    assert _balance(world, world.credit) == 4800


def test_home_only_tier_without_a_chosen_location_keeps_todays_rule_for_the_home_practice(world):
    """A desk of the member's practice that chose no location redeems as before locations existed;
    a sibling practice's desk without one is refused (it is not at the home location)."""
    _home_only(world)
    now = timezone.now()
    for user in (world.pasadena_desk, world.harbor_desk):
        user.staff_profile.location = None
        user.staff_profile.save(update_fields=["location"])
    entry = services.redeem_entitlement(membership=world.membership, service=world.credit, quantity=100,
                                        actor=services.Actor.staff(world.pasadena_desk), idempotency_key="k1",
                                        now=now)
    assert entry.location_id is None
    with pytest.raises(NotRedeemableHere):
        services.redeem_entitlement(membership=world.membership, service=world.credit, quantity=100,
                                    actor=services.Actor.staff(world.harbor_desk), idempotency_key="k2", now=now)


def test_a_practice_of_another_group_gets_404_everywhere(world):
    elsewhere = signed_in(world.elsewhere_desk)
    entry = services.redeem_entitlement(membership=world.membership, service=world.credit, quantity=100,
                                        actor=services.Actor.staff(world.pasadena_desk), idempotency_key="e",
                                        now=timezone.now())
    member_urls = [visit_url(world.ana)] + [
        reverse(f"memberships:{name}", args=[world.ana.pk])
        for name in ("chart", "enroll", "change_tier", "pause", "resume", "cancel")
    ] + [reverse("memberships:reverse", args=[world.ana.pk, entry.pk]), reverse("card_link", args=[world.ana.pk])]
    assert {url: elsewhere.get(url).status_code for url in member_urls} == {url: 404 for url in member_urls}
    form = {"service": world.facial.pk, "quantity": "1", "token": "b" * 32, "version": "0"}
    assert elsewhere.post(redeem_url(world.ana), form).status_code == 404
    assert elsewhere.post(reverse("memberships:redeem", args=[world.ana.pk]), form).status_code == 404
    assert _balance(world, world.facial) == 1
    found = elsewhere.get(reverse("memberships:home"), {"q": "Garcia"})
    assert found.context["results"] == []


def test_sibling_desk_gets_404_on_every_other_page_of_the_member(world):
    harbor = signed_in(world.harbor_desk)
    entry = services.redeem_entitlement(membership=world.membership, service=world.credit, quantity=100,
                                        actor=services.Actor.staff(world.pasadena_desk), idempotency_key="e",
                                        now=timezone.now())
    urls = [reverse(f"memberships:{name}", args=[world.ana.pk])
            for name in ("chart", "enroll", "change_tier", "pause", "resume", "cancel")]
    urls += [reverse("memberships:reverse", args=[world.ana.pk, entry.pk]), reverse("card_link", args=[world.ana.pk])]
    assert {url: harbor.get(url).status_code for url in urls} == {url: 404 for url in urls}
    form = {"service": world.facial.pk, "quantity": "1", "token": "c" * 32, "version": "0"}
    assert harbor.post(reverse("memberships:redeem", args=[world.ana.pk]), form).status_code == 404
    assert _balance(world, world.facial) == 1


def test_a_practice_on_its_own_sees_only_its_own_members_as_before(world):
    """Bloom leaves the group: its desk no longer finds or opens Glow's member."""
    world.bloom.organization = None
    world.bloom.save(update_fields=["organization"])
    harbor = signed_in(world.harbor_desk)
    assert harbor.get(visit_url(world.ana)).status_code == 404
    assert harbor.get(reverse("memberships:home"), {"q": "Garcia"}).context["results"] == []


def test_the_members_own_page_says_where_each_treatment_was_used(world):
    from tests.portal.me_support import sign_in
    from tests.support.two_factor import VerifyingClient

    now = timezone.now()
    services.redeem_entitlement(membership=world.membership, service=world.facial, actor=services.Actor.staff(
        world.harbor_desk), idempotency_key="at-harbor", now=now)
    services.redeem_entitlement(membership=world.membership, service=world.credit, quantity=500,
                                actor=services.Actor.record(), idempotency_key="by-record", now=now)
    member = VerifyingClient()
    sign_in(member, world.ana)
    page = member.get(reverse("portal:me:page")).content.decode()
    assert "Used: HydraFacial at Harbor" in page
    assert "Used: Product credit<" in page           # the record's: no clinic recorded, none said


def test_who_looked_names_the_clinic_of_each_read_and_change(world):
    from memberships.roles import MANAGER
    from tests.factories import staff_user

    signed_in(world.harbor_desk).get(visit_url(world.ana))
    manager = staff_user(MANAGER, world.glow, username="glow-manager")
    page = signed_in(manager).get(reverse("memberships:who_looked", args=[world.ana.pk])).content.decode()
    assert "Opened the chart panel at another practice of the group" in page
    assert '<td data-testid="where">Harbor</td>' in page
