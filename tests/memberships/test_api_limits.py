"""What an integrator gets for a page size the API does not take, and for an Idempotency-Key sent
again with another appointment: a 400 or a 409 with its code, never a silent answer to something
else than what was asked."""

from __future__ import annotations

import pytest

from memberships.models import Reservation
from tests.factories import active_membership
from tests.memberships.api_support import hold, token_client


@pytest.fixture
def api(front_desk):
    return token_client(front_desk)


@pytest.mark.parametrize("size", ["abc", "0", "-1", "101", "2.5", "1e3", str(10**30), ""])
@pytest.mark.parametrize("url", ["/api/v1/members/", "/api/v1/tiers/", "/api/v1/services/"])
def test_a_page_size_outside_1_to_100_is_400_naming_the_parameter(api, glow, url, size):
    response = api.get(url, {"page_size": size})
    assert response.status_code == 400, (size, response.content)
    assert response.json()["code"] == "invalid" and "page_size" in response.json()["fields"]


def test_page_sizes_inside_the_bounds_are_served(api, glow):
    tier, _, _ = glow
    for _ in range(3):
        active_membership(tier=tier)
    assert len(api.get("/api/v1/members/", {"page_size": "2"}).json()["results"]) == 2
    assert len(api.get("/api/v1/members/", {"page_size": "100"}).json()["results"]) == 3


def test_the_schema_says_the_page_size_bounds(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    [param] = [p for p in schema["paths"]["/api/v1/members/"]["get"]["parameters"] if p["name"] == "page_size"]
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, 100)


def test_a_hold_key_sent_again_for_another_appointment_is_409_not_the_first_hold(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    first = hold(api, m, {"service_id": facial.pk, "external_ref": "appt-1"}, key="hk")
    assert first.status_code == 201
    again = hold(api, m, {"service_id": facial.pk, "external_ref": "appt-2"}, key="hk")
    assert again.status_code == 409 and again.json()["code"] == "idempotency_key_reused"
    assert list(Reservation.objects.values_list("external_ref", flat=True)) == ["appt-1"]
    replay = hold(api, m, {"service_id": facial.pk, "external_ref": "appt-1"}, key="hk")
    assert replay.status_code == 201 and replay.json() == first.json()
