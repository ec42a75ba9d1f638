"""A location that runs its own record has a webhook secret of its own: its webhooks (generic signed,
Zenoti's token, FHIR's bearer) are verified with it and never with the practice's, and a location
without one takes none. A manager sets, replaces or removes it in the admin, where it is never shown;
each change is one audit row naming the location (never the secret), and the practice's secret is
handled the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.urls import reverse

from integrations.models import InboundEvent
from integrations.records.base import sign
from memberships.models import AuditLog, Location
from memberships.roles import MANAGER
from tests.factories import PracticeFactory, staff_user

pytestmark = pytest.mark.django_db

PRACTICE_SECRET = "practice-secret-0123456789"
NORTH_SECRET = "north-own-secret-9876543210"
ZENOTI_BODY = (Path(__file__).resolve().parents[1] / "fixtures" / "zenoti" / "webhook_appointment_completed.json"
               ).read_text()


def _generic(secret: str, n: int) -> tuple[bytes, dict]:
    body = json.dumps({"id": f"evt-{n}", "type": "treatment.completed", "data": {
        "appointment_id": f"A-{n}", "patient_id": "P-1", "service_code": "hydrafacial"}}).encode()
    return body, {"X-Medspa-Signature": sign(body, secret)}


def _zenoti(secret: str, n: int) -> tuple[bytes, dict]:
    payload = json.loads(ZENOTI_BODY)
    payload["id"] = payload["event_id"] = f"zen-{n}"
    return json.dumps(payload).encode(), {"X-Medspa-Token": secret}


def _fhir(secret: str, n: int) -> tuple[bytes, dict]:
    body = json.dumps({"resourceType": "Procedure", "id": f"proc-{n}", "status": "completed",
                       "meta": {"versionId": "1"}}).encode()
    return body, {"Authorization": f"Bearer {secret}"}


KINDS = {"webhook": _generic, "zenoti": _zenoti, "fhir": _fhir}


def _clinic(adapter: str, *, secret: str = NORTH_SECRET):
    practice = PracticeFactory(slug="glow", record_webhook_secret=PRACTICE_SECRET)
    nowhere = "http://127.0.0.1:9/none"
    north = Location.objects.create(practice=practice, name="North", record_adapter=adapter,
                                    record_webhook_secret=secret,
                                    record_config={"base_url": nowhere, "outbound_url": nowhere})
    return practice, north


def _post(client, adapter, practice, north, secret, n):
    body, headers = KINDS[adapter](secret, n)
    return client.post(f"/webhooks/records/{adapter}/{practice.slug}/locations/{north.pk}/", data=body,
                       content_type="application/json", headers=headers)


@pytest.mark.parametrize("adapter", sorted(KINDS))
def test_a_locations_webhook_is_verified_with_its_own_secret_never_the_practices(client, adapter):
    practice, north = _clinic(adapter)
    unknown = _post(client, adapter, practice, Location(pk=north.pk + 100), NORTH_SECRET, 0)
    by_practice = _post(client, adapter, practice, north, PRACTICE_SECRET, 1)
    assert (by_practice.status_code, by_practice.content) == (unknown.status_code, unknown.content)
    assert by_practice.status_code == 401 and not InboundEvent.objects.exists()
    own = _post(client, adapter, practice, north, NORTH_SECRET, 2)
    assert own.status_code == 200 and InboundEvent.objects.count() == 1


@pytest.mark.parametrize("adapter", sorted(KINDS))
def test_a_location_without_a_secret_of_its_own_takes_no_webhook(client, adapter):
    practice, north = _clinic(adapter, secret="")
    for n, secret in enumerate((PRACTICE_SECRET, "", "guess")):
        assert _post(client, adapter, practice, north, secret, n).status_code == 401
    assert not InboundEvent.objects.exists()


def _admin_post(client, url, **changes):
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    if "record_config" in form.fields:
        data["record_config"] = form["record_config"].value()
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not False}
    answer = client.post(url, data)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    return page


def test_a_manager_sets_replaces_and_removes_a_locations_secret_in_the_admin_audited(client, settings):
    settings.RECORD_ALLOW_PRIVATE_URLS = True
    practice, north = _clinic("webhook", secret="")
    boss = staff_user(MANAGER, practice, username="boss")
    client.force_login(boss)
    url = reverse("admin:memberships_location_change", args=[north.pk])

    page = _admin_post(client, url, new_webhook_secret=NORTH_SECRET)
    assert "Currently not set" in page.content.decode()
    assert _post(client, "webhook", practice, north, NORTH_SECRET, 1).status_code == 200

    page = _admin_post(client, url)                                  # saved again: kept, never shown
    html = page.content.decode()
    assert NORTH_SECRET not in html and PRACTICE_SECRET not in html and "Currently set" in html
    _admin_post(client, url, new_webhook_secret="north-rotated-secret")
    assert _post(client, "webhook", practice, north, NORTH_SECRET, 2).status_code == 401      # the old one: gone
    assert _post(client, "webhook", practice, north, "north-rotated-secret", 3).status_code == 200
    _admin_post(client, url, remove_webhook_secret="on")
    assert _post(client, "webhook", practice, north, "north-rotated-secret", 4).status_code == 401
    assert Location.objects.get(pk=north.pk).record_webhook_secret == ""

    rows = list(AuditLog.objects.filter(action__startswith="record_webhook_secret").order_by("id"))
    assert [row.action for row in rows] == ["record_webhook_secret_set", "record_webhook_secret_replaced",
                                            "record_webhook_secret_removed"]
    assert {(row.user_id, row.object_type, row.object_id) for row in rows} == {(boss.pk, "Location", str(north.pk))}
    assert all(row.detail == {"practice_id": practice.pk, "location_id": north.pk} for row in rows)
    assert not any("secret-" in json.dumps(row.detail) for row in rows)
    assert practice.__class__.objects.get(pk=practice.pk).record_webhook_secret == PRACTICE_SECRET     # untouched


def test_replacing_the_practices_secret_is_audited_too(client, settings):
    settings.RECORD_ALLOW_PRIVATE_URLS = True
    practice, _ = _clinic("webhook")
    boss = staff_user(MANAGER, practice, username="boss")
    client.force_login(boss)
    url = reverse("admin:memberships_practice_change", args=[practice.pk])
    _admin_post(client, url, new_webhook_secret="practice-rotated-secret")
    _admin_post(client, url)
    row = AuditLog.objects.get(action__startswith="record_webhook_secret")
    assert (row.action, row.object_type, row.detail) == (
        "record_webhook_secret_replaced", "Practice", {"practice_id": practice.pk, "location_id": None})
    assert Location.objects.get(name="North").record_webhook_secret == NORTH_SECRET               # untouched


def test_the_locations_secret_is_ciphertext_at_rest_and_moves_to_a_new_key(settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command
    from django.db import connection

    from memberships.fields import _cipher

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [first]
    _cipher.cache_clear()
    try:
        _, north = _clinic("webhook")

        def raw():
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT record_webhook_secret FROM {Location._meta.db_table} WHERE id = %s", [north.pk])
                return cursor.fetchone()[0]
        assert NORTH_SECRET not in raw() and raw().startswith("fernet:")
        settings.FIELD_ENCRYPTION_KEYS = [second, first]
        _cipher.cache_clear()
        call_command("rotate_field_encryption")
        settings.FIELD_ENCRYPTION_KEYS = [second]            # the old key can go now
        _cipher.cache_clear()
        assert Location.objects.get(pk=north.pk).record_webhook_secret == NORTH_SECRET
    finally:
        _cipher.cache_clear()


@pytest.mark.parametrize("adapter", sorted(KINDS))
def test_a_locations_address_without_the_trailing_slash_is_still_the_locations_own(client, adapter):
    """The location's record posts to its address without the last slash, while the practice runs the
    same kind of record: the location's secret is what verifies it (stored as the location's own), and
    the practice's secret does not."""
    practice, north = _clinic(adapter)
    practice.record_adapter = adapter
    practice.save(update_fields=["record_adapter"])
    url = f"/webhooks/records/{adapter}/{practice.slug}/locations/{north.pk}"

    def post(secret, n):
        body, headers = KINDS[adapter](secret, n)
        return client.post(url, data=body, content_type="application/json", headers=headers)

    assert post(PRACTICE_SECRET, 1).status_code == 401 and not InboundEvent.objects.exists()
    assert post(NORTH_SECRET, 2).status_code == 200
    assert list(InboundEvent.objects.values_list("source", flat=True)) == [
        f"record:{adapter}:{practice.pk}:{north.pk}"]


def test_a_location_still_on_the_practices_copied_secret_is_told_and_cannot_be_given_it_again(client, settings):
    """A location that ran its own record before it had a secret of its own started with a copy of the
    practice's, which still verifies its webhooks: its admin page says so (never the secret), and the
    practice's secret is refused as the location's new one, changing nothing."""
    settings.RECORD_ALLOW_PRIVATE_URLS = True
    practice, north = _clinic("webhook", secret=PRACTICE_SECRET)
    client.force_login(staff_user(MANAGER, practice, username="boss"))
    url = reverse("admin:memberships_location_change", args=[north.pk])

    html = client.get(url).content.decode()
    assert "a copy of the practice" in html and PRACTICE_SECRET not in html

    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["record_config"] = form["record_config"].value()
    data = {k: v for k, v in data.items() if v is not False} | {"new_webhook_secret": PRACTICE_SECRET}
    answer = client.post(url, data)
    assert answer.status_code == 200 and "differ from the practice" in answer.content.decode()
    assert not AuditLog.objects.filter(action__startswith="record_webhook_secret").exists()

    _admin_post(client, url, new_webhook_secret=NORTH_SECRET)
    assert "a copy of the practice" not in client.get(url).content.decode()
    assert _post(client, "webhook", practice, north, PRACTICE_SECRET, 1).status_code == 401


def test_the_practices_new_secret_may_not_be_a_locations_own(client, settings):
    settings.RECORD_ALLOW_PRIVATE_URLS = True
    practice, north = _clinic("webhook")
    client.force_login(staff_user(MANAGER, practice, username="boss"))
    url = reverse("admin:memberships_practice_change", args=[practice.pk])
    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["record_config"] = form["record_config"].value()
    data = {k: v for k, v in data.items() if v is not False} | {"new_webhook_secret": NORTH_SECRET}
    answer = client.post(url, data)
    assert answer.status_code == 200 and "differ from its locations" in answer.content.decode()
    assert practice.__class__.objects.get(pk=practice.pk).record_webhook_secret == PRACTICE_SECRET
