"""A location's record webhook names its practice and itself: a location of another practice (even of
the same group, even signed with that practice's own secret) is answered exactly like an unknown
practice or a bad signature, and nothing is stored — the endpoint tells nobody which locations exist."""

from __future__ import annotations

import pytest

from integrations.models import InboundEvent
from memberships.models import Location, Organization
from tests.factories import PracticeFactory

from .test_rollout_records import SECRET, _treatment, clinics  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db


def test_a_location_of_another_practice_in_the_url_is_answered_like_an_unknown_one(client, clinics, practice):
    north, _ = clinics
    org = Organization.objects.create(name="Glow Group", slug="glow-group")
    practice.organization = org
    practice.save(update_fields=["organization"])
    sibling = PracticeFactory(slug="sibling", organization=org, record_webhook_secret=SECRET, record_adapter="webhook")
    theirs = Location.objects.create(practice=sibling, name="Their clinic", record_adapter="webhook",
                                     record_config={"outbound_url": "http://127.0.0.1:9/none"})
    crossed = [_treatment(client, f"/webhooks/records/webhook/{practice.slug}/locations/{theirs.pk}/", "P", "A-1"),
               _treatment(client, f"/webhooks/records/webhook/{sibling.slug}/locations/{north.pk}/", "P", "A-2"),
               _treatment(client, f"/webhooks/records/webhook/{practice.slug}/locations/{theirs.pk + 100}/", "P", "A-3"),
               _treatment(client, f"/webhooks/records/webhook/nowhere/locations/{north.pk}/", "P", "A-4")]
    assert {(answer.status_code, answer.content) for answer in crossed} == {(401, crossed[0].content)}
    assert not InboundEvent.objects.exists()
    mine = _treatment(client, f"/webhooks/records/webhook/{practice.slug}/locations/{north.pk}/", "P", "A-5")
    assert mine.status_code == 200 and InboundEvent.objects.count() == 1
