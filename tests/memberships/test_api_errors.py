"""Bad input through the API is a 400 with a JSON code and changes nothing — a NUL byte, a lone
surrogate or a control character anywhere in a query or a body, on PostgreSQL and SQLite alike — and
the OpenAPI schema says so: every error answer documented with its body, the members list as the
object it is, the Idempotency-Key header with its bounds."""

from __future__ import annotations

import json

import pytest

from memberships.models import EntitlementBalance, LedgerEntry, Reservation
from tests.factories import active_membership
from tests.memberships.api_support import token_client

BAD = {"nul": "a\x00b", "control": "a\x07b", "escape": "\x1b[2J", "c1": "a\x85b", "del": "a\x7fb"}


@pytest.fixture
def api(front_desk):
    return token_client(front_desk)


@pytest.fixture
def world(glow):
    tier, facial, credit = glow
    return active_membership(tier=tier), facial, credit


def _post(api, url, body, **headers):
    """POST a JSON body as a client would send it (json.dumps escapes a lone surrogate as \\ud800)."""
    return api.post(url, json.dumps(body), content_type="application/json", **headers)


def _refused(response, field=None):
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert body["code"] == "invalid_characters"
    if field is not None:
        assert field in body["fields"], body


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("path", ["/api/v1/members/", "/api/v1/tiers/", "/api/v1/services/",
                                  "/api/v1/memberships/{m}/timeline/", "/api/v1/memberships/{m}/holds/"])
def test_a_bad_character_in_any_query_parameter_is_400(api, world, path, bad):
    m, _, _ = world
    url = path.format(m=m.pk)
    _refused(api.get(url, {"q": bad}), "q")
    _refused(api.get(url, {"cursor": bad}), "cursor")
    _refused(api.get(url, {"kind": bad, "status": "active"}), "kind")
    _refused(api.get(url, {f"x{bad}": "1"}))


def test_nul_in_the_search_box_is_400_not_a_database_error(api, world):
    """The issue's case: PostgreSQL refuses NUL in text (psycopg DataError, a 500 before)."""
    m, _, _ = world
    response = api.get("/api/v1/members/", {"q": m.member.last_name + "\x00"})
    _refused(response, "q")
    assert api.get("/api/v1/members/", {"q": m.member.last_name}).json()["results"][0]["id"] == m.member_id


def test_undecodable_query_bytes_are_not_a_server_error(api, world):
    """%ED%A0%80 would be a lone surrogate in UTF-8: Django reads it as U+FFFD, an ordinary character."""
    response = api.get("/api/v1/members/", QUERY_STRING="q=%ED%A0%80")
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\x00", "x\x01"])
def test_a_bad_character_in_a_body_field_is_400_and_changes_nothing(api, world, text):
    m, facial, credit = world
    held = _post(api, f"/api/v1/memberships/{m.pk}/holds/", {"service_id": facial.pk, "external_ref": text},
                 HTTP_IDEMPOTENCY_KEY="h")
    _refused(held, "external_ref")
    entry_id = api.post(f"/api/v1/memberships/{m.pk}/redemptions/", {"service_id": credit.pk, "quantity": 5},
                        format="json", HTTP_IDEMPOTENCY_KEY="r").json()["id"]
    _refused(_post(api, f"/api/v1/redemptions/{entry_id}/reverse/", {"reason": text}), "reason")
    _refused(_post(api, f"/api/v1/memberships/{m.pk}/redemptions/", {"service_id": facial.pk, text: 1},
                   HTTP_IDEMPOTENCY_KEY="r2"))
    assert not Reservation.objects.exists()
    assert LedgerEntry.objects.filter(membership=m, kind__in=["reverse"]).count() == 0
    assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 1


def test_newlines_and_tabs_in_free_text_are_fine(api, world):
    m, facial, _ = world
    entry_id = api.post(f"/api/v1/memberships/{m.pk}/redemptions/", {"service_id": facial.pk},
                        format="json", HTTP_IDEMPOTENCY_KEY="r").json()["id"]
    response = api.post(f"/api/v1/redemptions/{entry_id}/reverse/", {"reason": "wrong member\n\tsorry"},
                        format="json")
    assert response.status_code == 201


def test_an_address_that_is_not_an_operation_is_a_json_404(api, world):
    for url in ["/api/v1/memberships/abc/", "/api/v1/holds/-1/commit/", "/api/v1/nothing-here/"]:
        response = api.get(url) if "commit" not in url else api.post(url)
        assert response.status_code == 404 and response.json()["code"] == "not_found", url


def test_a_body_that_is_not_json_is_415(api, world):
    m, facial, _ = world
    response = api.post(f"/api/v1/memberships/{m.pk}/redemptions/", {"service_id": facial.pk},
                        HTTP_IDEMPOTENCY_KEY="form")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"


# --- the schema -------------------------------------------------------------------------------

@pytest.fixture
def schema(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_members_list_is_documented_as_the_object_it_returns(schema):
    ok = schema["paths"]["/api/v1/members/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page = _resolve(schema, ok)
    assert page["type"] == "object" and page["properties"]["results"]["type"] == "array"
    assert {"next", "previous"} <= set(page["properties"])
    params = {p["name"] for p in schema["paths"]["/api/v1/members/"]["get"]["parameters"]}
    assert {"q", "status", "tier_id", "cursor", "page_size"} <= params


def test_every_operation_documents_its_errors_with_the_error_body(schema):
    operations = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 15
    for path, method, op in operations:
        wanted = ({"400", "401", "403"} | ({"404"} if "{id}" in path else set())
                  | ({"409"} if method == "post" else set()))
        assert wanted <= set(op["responses"]), (path, method, sorted(op["responses"]))
        for status in wanted:
            body = _resolve(schema, op["responses"][status]["content"]["application/json"]["schema"])
            assert {"code", "detail"} <= set(body["required"]), (path, method, status)


def test_idempotency_key_is_a_documented_header_with_bounds(schema):
    for path in ["/api/v1/memberships/{id}/redemptions/", "/api/v1/memberships/{id}/holds/"]:
        header = next(p for p in schema["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key")
        assert header["in"] == "header" and header["required"] is True
        assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 150)


def test_a_body_nested_beyond_reason_is_400(api, world):
    m, facial, _ = world
    body = "[" * 100_000 + "]" * 100_000
    response = api.post(f"/api/v1/memberships/{m.pk}/redemptions/", body, content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="deep")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
