"""Fixtures of the join tests: a practice that sells memberships online (the Glow tier offered
online, a published agreement, the `tier_sync` stage) and the processor as the join page sees it
(`FakeJoinProcessor`). Imported by the join test modules (not a conftest: tests/portal is shared)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from memberships.models import AutomationStage, MembershipAgreement
from tests.support.checkout import FakeJoinProcessor


@pytest.fixture
def online(glow):
    tier, facial, credit = glow
    tier.offered_online = True
    tier.save(update_fields=["offered_online"])
    practice = tier.practice
    practice.automation_stage = AutomationStage.TIER_SYNC
    practice.save(update_fields=["automation_stage"])
    MembershipAgreement.objects.create(practice=practice, version=1, text="Old terms.",
                                       published_at=timezone.now() - timedelta(days=30))
    agreement = MembershipAgreement.objects.create(practice=practice, version=2,
                                                   text="Monthly membership; cancel with 30 days' notice.",
                                                   published_at=timezone.now() - timedelta(days=1))
    MembershipAgreement.objects.create(practice=practice, version=3, text="Draft, not published.")
    return {"practice": practice, "tier": tier, "facial": facial, "credit": credit, "agreement": agreement}


@pytest.fixture
def processor(monkeypatch):
    fake = FakeJoinProcessor()
    monkeypatch.setattr("integrations.processors.sync.get_processor", lambda: fake)
    return fake


def form(online, **changes) -> dict:
    data = {"tier": str(online["tier"].pk), "first_name": "Nora", "last_name": "Newman",
            "email": "Nora.Newman@example.com", "phone": "(415) 555-0177", "agreement_version": "2",
            "accept_agreement": "on", "website": ""}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}
