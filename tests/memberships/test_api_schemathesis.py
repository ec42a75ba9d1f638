"""The API answers as its OpenAPI schema says: schemathesis generates requests for every operation
(valid and invalid ones: wrong types, missing fields, odd characters, missing headers) with the
token of a manager and of a front desk, half of them aimed at real objects of the practice (and of
another practice), and checks each answer: never a server error, a documented status code and
content type, and a body that matches the documented schema."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memberships import services
from memberships.models import EntryKind, LedgerEntry
from memberships.roles import FRONT_DESK, MANAGER
from tests.factories import PracticeFactory, active_membership, glow_tier, staff_user
from tests.memberships.api_support import api_token

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES = 25


def _openapi() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    raw = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(raw, default=str))  # plain JSON (lazy strings, tuples)


@pytest.fixture
def wsgi_app():
    """Django's WSGI app, in the test's transaction (as Django's test client: connections are not
    closed at the end of each request)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _objects_of(tier, facial) -> dict[str, list[int]]:
    """Real objects a generated request may aim at: memberships with plenty to spend, held units,
    redemptions."""
    now = timezone.now()
    actor = services.Actor.system()
    memberships = [active_membership(tier=tier) for _ in range(2)]
    for m in memberships:
        services.grant_opening_balance(membership=m, service=facial, quantity=500, actor=actor,
                                       idempotency_key=f"fuzz-opening:{m.pk}", now=now)
    holds = [services.reserve_entitlement(membership=memberships[0], service=facial, quantity=1, actor=actor,
                                          idempotency_key=f"fuzz-hold:{memberships[0].pk}:{n}", now=now)
             for n in range(12)]
    entries = [services.redeem_entitlement(membership=memberships[1], service=facial, quantity=1, actor=actor,
                                           idempotency_key=f"fuzz-redeem:{memberships[1].pk}:{n}", now=now)
               for n in range(3)]
    return {
        "members": [m.member_id for m in memberships],
        "memberships": [m.pk for m in memberships],
        "holds": [h.pk for h in holds],
        "redemptions": [e.pk for e in entries],
        "tiers": [tier.pk],
        "services": [facial.pk],
    }


@pytest.fixture
def objects(glow):
    tier, facial, _ = glow
    return {"ours": _objects_of(tier, facial),
            "theirs": _objects_of(*glow_tier(PracticeFactory(slug="elsewhere"))[:2])}


def _ids_for(path: str, objects: dict[str, list[int]]) -> list[int]:
    """The real objects an operation's {id} may name: /api/v1/<kind>/{id}/...; commit and release
    each get their own holds (one would otherwise leave the other nothing still held)."""
    if "{id}" not in path:
        return []
    ids = objects[path.split("/")[3]]
    if path.endswith("/commit/"):
        return ids[0::2]
    return ids[1::2] if path.endswith("/release/") else ids


def _fuzz(operation, *, token: str, objects: dict, answers: Counter) -> None:
    strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    ours, theirs = _ids_for(operation.path, objects["ours"]), _ids_for(operation.path, objects["theirs"])
    service_ids = objects["ours"]["services"]
    # Mostly one of our objects, else the generated id or another practice's object.
    aims = st.tuples(st.sampled_from([ours, ours, ours, None, theirs]), st.integers(0, 99)).map(
        lambda pick: pick[0][pick[1] % len(pick[0])] if pick[0] else None) if ours else st.none()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, aim=aims)
    def run(case, aim):
        if aim is not None and "id" in (case.path_parameters or {}):
            case.path_parameters["id"] = aim
            if isinstance(case.body, dict) and "service_id" in case.body:
                case.body["service_id"] = service_ids[0]
        response = case.call(headers={"Authorization": f"Token {token}"})
        answers[(operation.label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("role", [MANAGER, FRONT_DESK])
def test_every_operation_answers_as_its_schema_says(role, practice, objects, wsgi_app):
    token = api_token(staff_user(role, practice, username=f"fuzz-{role}"))
    schema = schemathesis.openapi.from_dict(_openapi())
    schema.app = wsgi_app
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    answers = Counter()
    for operation in operations:
        _fuzz(operation, token=token, objects=objects, answers=answers)
    # Not only refusals: every operation the role may use succeeded at least once.
    succeeded = {label for (label, status), _ in answers.items() if status < 300}
    may_use = {op.label for op in operations if role == MANAGER or "reverse" not in op.path}
    assert may_use - succeeded == set()
    # The fuzzing spent through the API's one doors only: the ledger still adds up.
    for entry in LedgerEntry.objects.filter(kind=EntryKind.REDEEM):
        assert entry.balance_after >= 0
