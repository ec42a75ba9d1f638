"""Fixtures for the record side: a real local FHIR server (sekmet-fhir, one per test process), a
practice on a given adapter, and helpers to send signed webhooks."""

from __future__ import annotations

import json

import pytest

from integrations.records.base import sign
from memberships.models import AutomationStage
from tests.support.fhir_server import FhirClient, LocalFhirServer

SECRET = "rec-secret-0123456789"


@pytest.fixture(scope="session")
def fhir_server():
    with LocalFhirServer() as srv:
        yield srv


@pytest.fixture
def fhir(fhir_server):
    client = FhirClient(fhir_server.base_url)
    yield client
    client.close()


@pytest.fixture
def on_adapter(practice):
    """Put the practice on an adapter, with a webhook secret and a stage."""
    def configure(adapter: str, *, stage: str = AutomationStage.REDEMPTIONS, **config):
        practice.record_adapter = adapter
        practice.record_config = config
        practice.record_webhook_secret = SECRET
        practice.automation_stage = stage
        practice.save()
        return practice
    return configure


def signed_post(client, url: str, payload: dict, *, secret: str = SECRET, **headers):
    body = json.dumps(payload).encode()
    return client.post(url, data=body, content_type="application/json",
                       headers={"X-Medspa-Signature": sign(body, secret), **headers})
