"""The record side on PostgreSQL:

1. webhook intake — a signed `treatment.completed` POST through the whole Django stack (verify the
   HMAC, store once in the inbox), per request;
2. processing — the inbox sweep turning stored treatments into redemptions, events per second;
3. FHIR delivery — one record delivery (patient, Account, Flag) against a local FHIR R4 server
   (sekmet-fhir, same machine): the first write of a member, and a re-sync where nothing changed
   (searches only, no write).

Connections persist as in production (CONN_MAX_AGE=60); the first line printed is the machine's
floor (one INSERT + COMMIT) to read the others against.
"""

from __future__ import annotations

import json
import time
import uuid

N_WEBHOOKS = 500
N_MEMBERS_FHIR = 40


def run() -> dict[str, float]:
    from benchmarks._support import fresh_database

    with fresh_database("bench_records"):
        return _run()


def _practice(adapter: str, **config):
    from memberships.models import AutomationStage
    from tests.factories import PracticeFactory, glow_tier

    practice = PracticeFactory(slug=f"bench-rec-{adapter}-{time.time_ns()}", record_adapter=adapter,
                               record_config=config, record_webhook_secret="bench-secret",
                               automation_stage=AutomationStage.REDEMPTIONS)
    return practice, glow_tier(practice)


def _run() -> dict[str, float]:
    from django.test import Client
    from django.utils import timezone

    from benchmarks._support import cpu_meter, summary_ms
    from integrations import inbox
    from integrations.records import get_adapter
    from integrations.records.base import sign
    from integrations.records.selectors import member_state
    from memberships.models import Member
    from tests.factories import MemberFactory, active_membership
    from tests.support.fhir_server import LocalFhirServer

    results: dict[str, float] = {}
    practice, (tier, facial, _) = _practice("webhook", outbound_url="http://127.0.0.1:9/unused")
    now = timezone.now()
    members = []
    for i in range(N_WEBHOOKS):
        m = active_membership(tier=tier, member=MemberFactory(practice=practice, record_patient_id=f"P-{i}"),
                              now=now)
        members.append(m.member)

    from django.db import connection

    # As in production (CONN_MAX_AGE=60): the bench settings' 0 makes django-q's ORM broker and the
    # request cycle reconnect to PostgreSQL for every webhook, which measures connection set-up.
    connection.settings_dict["CONN_MAX_AGE"] = 60
    samples = []  # the machine's floor: one tiny INSERT + COMMIT (autocommit)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_floor (id serial primary key, v int)")
        for i in range(100):
            started = time.perf_counter()
            cursor.execute("INSERT INTO bench_floor (v) VALUES (%s)", [i])
            samples.append(time.perf_counter() - started)
    print(f"floor, one INSERT + COMMIT: {summary_ms(samples)}")

    # CPU: this process's main thread and its PostgreSQL backend, per item (cpu_meter).
    client = Client(HTTP_HOST="127.0.0.1")
    samples = []
    with cpu_meter() as cpu:
        for i, member in enumerate(members):
            body = json.dumps({"id": f"evt_{i}", "type": "treatment.completed",
                               "data": {"appointment_id": f"A-{i}", "patient_id": member.record_patient_id,
                                        "service_code": "hydrafacial"}}).encode()
            started = time.perf_counter()
            response = client.post(f"/webhooks/records/webhook/{practice.slug}/", data=body,
                                   content_type="application/json",
                                   headers={"X-Medspa-Signature": sign(body, "bench-secret")})
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
    print(f"webhook intake ({N_WEBHOOKS} signed POSTs, verify + store): {summary_ms(samples)}; "
          f"{cpu.describe(N_WEBHOOKS, 'request')}")
    results["intake_p95_ms"] = sorted(samples)[int(0.95 * (len(samples) - 1))] * 1000

    with cpu_meter() as cpu:
        started = time.perf_counter()
        counts = inbox.process_due(now=timezone.now(), limit=N_WEBHOOKS)
        elapsed = time.perf_counter() - started
    print(f"processing: {counts.get('processed', 0)} treatments → redemptions in {elapsed:.2f} s "
          f"({counts.get('processed', 0) / elapsed:.0f} events/s, one worker); "
          f"{cpu.describe(sum(counts.values()), 'event')}")
    results["processing_per_s"] = counts.get("processed", 0) / elapsed

    with LocalFhirServer() as server:
        fhir_practice, (ftier, _, _) = _practice("fhir", base_url=server.base_url,
                                                 identifier_system=f"https://bench.example/{uuid.uuid4().hex[:8]}")
        adapter = get_adapter(fhir_practice)
        fmembers = [active_membership(tier=ftier, member=MemberFactory(practice=fhir_practice), now=now).member
                    for _ in range(N_MEMBERS_FHIR)]
        for label in ("first write", "unchanged re-sync"):
            samples = []
            with cpu_meter() as cpu:
                for member in fmembers:
                    member = Member.objects.get(pk=member.pk)
                    started = time.perf_counter()
                    adapter.sync_member(member, member_state(member=member), event_ref="bench", now=now)
                    samples.append(time.perf_counter() - started)
            print(f"FHIR delivery, {label} ({N_MEMBERS_FHIR} members): {summary_ms(samples)}; ours (not the "
                  f"FHIR server's) {cpu.describe(N_MEMBERS_FHIR, 'delivery')}")
            results[f"fhir_{label.split()[0]}_p50_ms"] = sorted(samples)[len(samples) // 2] * 1000
    return results
