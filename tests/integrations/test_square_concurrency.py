"""Two workers processing Square events of the same memberships at once (PostgreSQL, real worker processes,
as Stripe's `test_concurrent_workers_converge_on_every_membership`): 20 memberships' Square histories —
charges paid, failed and paid later on the invoice's page (a part first, sometimes), never paid,
cancellations — mixed, shuffled, a third of the events twice, taken by two workers side by side in small
rounds, so one membership's events meet in both. Each membership ends as its twin whose history was
processed alone in real-time order: status, period, balances, one refill per paid invoice, dunning
cases, flags, mirrored invoices; no event failed."""

from __future__ import annotations

import copy
import random
from datetime import timedelta

import pytest

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import AutomationStage
from memberships.models.practice import Processor
from tests.integrations.test_pipeline_convergence import start_workers, wait_for
from tests.support.square_history import CyclePlan, SquarePlan, build_square_history, new_membership, store
from tests.support.stripe_history import capture_state, drain


def random_square_plan(rng: random.Random) -> SquarePlan:
    head = CyclePlan(failed=rng.random() < 0.5, paid=True)
    tail = [CyclePlan(failed=rng.random() < 0.5, paid=rng.random() < 0.6, partial=rng.random() < 0.3)
            for _ in range(rng.randint(0, 2))]
    return SquarePlan((head, *tail), cancelled=rng.random() < 0.3)


def _untag(value, tag: str):
    if isinstance(value, str):
        return value.replace(f"-{tag}-", "-T-").replace(f"sub-{tag}", "sub-T")
    if isinstance(value, dict):
        return {_untag(k, tag): _untag(v, tag) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_untag(v, tag) for v in value)
    return value


def state(membership, tag: str) -> dict:
    """`capture_state` with the history's tag taken out of Square's ids (`inv:0-<tag>-1`, `sub-<tag>`)."""
    return _untag(capture_state(membership, tag=tag), tag)


def failed_events():
    return list(InboundEvent.objects.filter(status=InboundStatus.FAILED).values_list("event_type", "error"))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_on_square_events_converge_on_every_membership(glow, httpserver, tmp_path):
    tier = glow[0]
    tier.practice.processor, tier.practice.automation_stage = Processor.SQUARE, AutomationStage.ALERTS
    tier.practice.save()
    rng = random.Random(20261206)
    plans = [random_square_plan(rng) for _ in range(20)]
    twins = []
    for i, plan in enumerate(plans):
        ref_tag, tag = f"r{i:03d}", f"c{i:03d}"
        reference = new_membership(tier, tag=ref_tag)
        for item in build_square_history(plan, tag=ref_tag):
            store(item.event, now=item.created)
            inbox.process_due(now=item.created)
        twins.append((plan, reference, ref_tag, new_membership(tier, tag=tag), tag))
    assert failed_events() == []

    mixed = []
    for plan, _, _, _, tag in twins:
        history = build_square_history(plan, tag=tag)
        mixed += history + [item for item in history if rng.random() < 1 / 3]
    rng.shuffle(mixed)
    now = max(item.created for item in mixed) + timedelta(minutes=1)
    for item in mixed:
        store(copy.deepcopy(item.event), now=now)

    # Square's events need no read from a processor: the address is only the worker's required option.
    workers = start_workers(2, api_base=httpserver.url_for("/"), folder=tmp_path, now=now)
    wait_for(workers, folder=tmp_path)
    drain(now=now + timedelta(days=1))

    diverged = {}
    for plan, reference, ref_tag, membership, tag in twins:
        expected, got = state(reference, ref_tag), state(membership, tag)
        if got != expected:
            diverged[f"{tag} ({plan})"] = {k: (expected[k], got[k]) for k in expected if expected[k] != got[k]}
    assert {"failed": failed_events(), "diverged": diverged} == {"failed": [], "diverged": {}}
