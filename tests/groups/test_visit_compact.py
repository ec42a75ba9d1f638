"""The compact chart panel an EHR shows beside its own, for a member of a sibling practice of the
group (`/visit/<id>/?compact=1`): the same rules as the full visit page — found, shown (audited at the
desk's location), redeemed exactly once where the tier allows, refused in words where it does not, 404
for another group — and framable only by the record the desk's location works in: the practice's
(CHART_FRAME_ANCESTORS) or, at a location running its own record, that record's origins alone."""

from __future__ import annotations

import re

import pytest

from memberships.models import AuditLog, EntitlementBalance, LedgerEntry, Location, RedeemableAt

from .redeem_world import build, redeem_url, signed_in, visit_url

pytestmark = pytest.mark.django_db

PRACTICE_EHR = "https://ehr.glow.example"
HARBOR_EHR = "https://harbor-ehr.example"
PASADENA_EHR = "https://pasadena-ehr.example"


@pytest.fixture
def world(db, settings):
    settings.CHART_FRAME_ANCESTORS = [PRACTICE_EHR]
    return build()


def _compact(member) -> str:
    return visit_url(member) + "?compact=1"


def _frame_ancestors(response) -> str:
    header = response["Content-Security-Policy"]
    return next(part.split(None, 1)[1] for part in header.split(";") if part.strip().startswith("frame-ancestors"))


def _form(page: str, service, quantity="1") -> dict:
    def field(name):
        return re.search(rf'name="{name}"[^>]*value="([^"]*)"', page).group(1)
    return {"service": service.pk, "quantity": quantity, "token": field("token"), "version": field("version"),
            "compact": "1"}


def test_a_sibling_desk_opens_the_compact_panel_and_redeems_from_it_exactly_once(world):
    harbor = signed_in(world.harbor_desk)
    response = harbor.get(_compact(world.ana))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'class="compact"' in page and "Ana Garcia" in page
    assert "Redeemable at any location of the group" in page
    assert f'data-testid="available-{world.facial.pk}">1<' in page and 'id="redeem-button"' in page
    assert '<input type="hidden" name="compact" value="1">' in page
    read = AuditLog.objects.get(action="view_visit", member=world.ana)
    assert (read.user, read.location) == (world.harbor_desk, world.harbor)

    form = _form(page, world.facial)
    answers = [harbor.post(redeem_url(world.ana), form) for _ in range(3)]       # a double (triple) click
    assert {(a.status_code, a["Location"]) for a in answers} == {(302, _compact(world.ana))}
    entries = LedgerEntry.objects.filter(membership=world.membership, kind="redeem")
    assert [(e.service_id, e.quantity, e.location_id) for e in entries] == [(world.facial.pk, -1, world.harbor.pk)]
    assert EntitlementBalance.objects.get(membership=world.membership, service=world.facial).balance == 0
    after = harbor.get(_compact(world.ana)).content.decode()
    assert 'class="compact"' in after and f'data-testid="available-{world.facial.pk}">0<' in after


def test_a_home_only_tier_is_refused_in_words_in_the_compact_panel_and_nothing_is_spent(world):
    world.tier.redeemable_at = RedeemableAt.HOME
    world.tier.save(update_fields=["redeemable_at"])
    harbor = signed_in(world.harbor_desk)
    page = harbor.get(_compact(world.ana)).content.decode()
    assert 'class="compact"' in page and "Redeemable only at Pasadena" in page
    assert 'data-testid="not-here"' in page and 'id="redeem-button"' not in page
    crafted = {"service": world.facial.pk, "quantity": "1", "token": "b" * 32, "version": "0", "compact": "1"}
    refused = harbor.post(redeem_url(world.ana), crafted)
    assert refused.status_code == 400 and "redeemable only at Pasadena" in refused.content.decode()
    assert 'class="compact"' in refused.content.decode()
    assert not LedgerEntry.objects.filter(membership=world.membership, kind="redeem").exists()


def test_another_groups_desk_gets_404_in_compact_mode_too(world):
    elsewhere = signed_in(world.elsewhere_desk)
    assert elsewhere.get(_compact(world.ana)).status_code == 404
    form = {"service": world.facial.pk, "quantity": "1", "token": "c" * 32, "version": "0", "compact": "1"}
    assert elsewhere.post(redeem_url(world.ana), form).status_code == 404
    assert not LedgerEntry.objects.filter(membership=world.membership, kind="redeem").exists()
    assert not AuditLog.objects.filter(action="view_visit").exists()


def test_the_compact_panel_is_framable_by_the_desks_record_and_nothing_else(world):
    harbor = signed_in(world.harbor_desk)
    compact = harbor.get(_compact(world.ana))
    assert "X-Frame-Options" not in compact and _frame_ancestors(compact) == PRACTICE_EHR
    full = harbor.get(visit_url(world.ana))
    assert full["X-Frame-Options"] == "DENY" and _frame_ancestors(full) == "'none'"

    # Harbor runs its own record: its origins alone frame the panel there, not the practice's record.
    Location.objects.filter(pk=world.harbor.pk).update(
        record_adapter="webhook", record_config={"frame_ancestors": [HARBOR_EHR]})
    compact = harbor.get(_compact(world.ana))
    assert "X-Frame-Options" not in compact and _frame_ancestors(compact) == HARBOR_EHR
    # … and with none listed, nobody frames it.
    Location.objects.filter(pk=world.harbor.pk).update(record_config={})
    compact = harbor.get(_compact(world.ana))
    assert compact["X-Frame-Options"] == "DENY" and _frame_ancestors(compact) == "'none'"
    # The member's own clinic still works in the practice's record.
    home = signed_in(world.pasadena_desk).get(_compact(world.ana))
    assert home.status_code == 200 and _frame_ancestors(home) == PRACTICE_EHR


def test_the_own_practices_compact_chart_follows_the_same_rule(world):
    from django.urls import reverse

    Location.objects.filter(pk=world.pasadena.pk).update(
        record_adapter="webhook", record_config={"frame_ancestors": [PASADENA_EHR]})
    chart = signed_in(world.pasadena_desk).get(reverse("memberships:chart", args=[world.ana.pk]) + "?compact=1")
    assert chart.status_code == 200 and _frame_ancestors(chart) == PASADENA_EHR
    other_clinic = signed_in(world.old_town_desk).get(reverse("memberships:chart", args=[world.ana.pk]) + "?compact=1")
    assert _frame_ancestors(other_clinic) == PRACTICE_EHR


def test_the_admin_takes_a_locations_record_origins_only_as_https_origins(world, client, settings):
    import json

    from django.urls import reverse

    from memberships.roles import MANAGER
    from tests.factories import staff_user

    settings.RECORD_ALLOW_PRIVATE_URLS = True
    client.force_login(staff_user(MANAGER, world.bloom, username="bloom-boss"))
    url = reverse("admin:memberships_location_change", args=[world.harbor.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
    for bad in (["http://harbor-ehr.example"], "https://harbor-ehr.example", ["https://x.example/path"], [3]):
        data.update(record_adapter="webhook", record_config=json.dumps({"frame_ancestors": bad}))
        answer = client.post(url, data)
        assert answer.status_code == 200 and "frame_ancestors" in answer.content.decode(), bad
    assert Location.objects.get(pk=world.harbor.pk).record_adapter == ""
    data["record_config"] = json.dumps({"frame_ancestors": [HARBOR_EHR]})
    assert client.post(url, data).status_code == 302
    assert _frame_ancestors(signed_in(world.harbor_desk).get(_compact(world.ana))) == HARBOR_EHR
