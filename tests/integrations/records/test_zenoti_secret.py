"""Zenoti's webhook secret travels in a header where the webhook can be given one (no secret in a
URL, where access logs and proxies keep it); the `?token=` URL works while ZENOTI_URL_TOKEN_ALLOWED."""

import json

from integrations.models import InboundEvent

from .conftest import SECRET
from .test_zenoti import fixture, zenoti  # noqa: F401  (fixture)


def _post(client, practice, *, query="", **headers):
    return client.post(f"/webhooks/records/zenoti/{practice.slug}/{query}",
                       data=json.dumps(fixture("webhook_appointment_completed.json")),
                       content_type="application/json", headers=headers)


def test_the_secret_in_a_header_is_accepted(zenoti, client):
    _, practice = zenoti
    assert _post(client, practice, **{"X-Medspa-Token": SECRET}).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_a_bearer_header_works_too_and_a_wrong_one_is_refused(zenoti, client):
    _, practice = zenoti
    assert _post(client, practice, Authorization="Bearer nope").status_code == 401
    assert _post(client, practice, Authorization=f"Bearer {SECRET}").status_code == 200


def test_a_wrong_header_is_not_rescued_by_the_url(zenoti, client):
    _, practice = zenoti
    assert _post(client, practice, query=f"?token={SECRET}", **{"X-Medspa-Token": "guess"}).status_code == 401
    assert InboundEvent.objects.count() == 0


def test_the_url_token_can_be_switched_off(zenoti, client, settings):
    _, practice = zenoti
    settings.ZENOTI_URL_TOKEN_ALLOWED = False
    assert _post(client, practice, query=f"?token={SECRET}").status_code == 401
    assert _post(client, practice, **{"X-Medspa-Token": SECRET}).status_code == 200


def test_an_unknown_practice_answers_like_a_bad_token(zenoti, client):
    _, practice = zenoti
    bad = _post(client, practice, **{"X-Medspa-Token": "guess"})
    unknown = client.post("/webhooks/records/zenoti/no-such-clinic/",
                          data=json.dumps(fixture("webhook_appointment_completed.json")),
                          content_type="application/json", headers={"X-Medspa-Token": SECRET})
    assert (unknown.status_code, unknown.content) == (bad.status_code, bad.content) == (401, bad.content)
