"""The record side on PostgreSQL:

1. webhook intake — a signed `treatment.completed` POST through the whole Django stack (verify the
   HMAC, store once in the inbox), per request;
2. processing — the inbox draining the stored treatments into redemptions (`integrations.inbox.
   process_due`, batches of INBOX_BATCH_SIZE, one worker), treatment events per second, beside the
   floor: the same rows (appointment, balance, lot, ledger entry, timeline event, outbox delivery,
   the inbox row's outcome) written for all of them in one transaction by hand-written set-based SQL
   that reads the stored webhooks — each side on its own copy of the same seed (CREATE DATABASE …
   TEMPLATE), each checked afterwards (every treatment spent once, nothing failed);
3. FHIR delivery — one record delivery (patient, Account, Flag) against a local FHIR R4 server
   (sekmet-fhir, same machine): the first write of a member, and a re-sync where nothing changed
   (searches only, no write).

Connections persist as in production (CONN_MAX_AGE=60); the first line printed is the machine's
floor (one INSERT + COMMIT) to read the others against. Every measurement prints the CPU ms per item
of its process and its PostgreSQL backends, which a neighbour's load does not move.

Goal (issue 16): ≥ 500 treatment events/s."""

from __future__ import annotations

import json
import os
import time
import uuid

N_WEBHOOKS = int(os.environ.get("BENCH_RECORDS_N", "1000"))
N_MEMBERS_FHIR = 40
GOAL_PER_S = 500


def run() -> dict[str, float]:
    from benchmarks._support import fresh_database

    with fresh_database("bench_records") as seed:
        return _run(seed)


def _practice(adapter: str, **config):
    from memberships.models import AutomationStage
    from tests.factories import PracticeFactory, glow_tier

    practice = PracticeFactory(slug=f"bench-rec-{adapter}-{time.time_ns()}", record_adapter=adapter,
                               record_config=config, record_webhook_secret="bench-secret",
                               automation_stage=AutomationStage.REDEMPTIONS)
    return practice, glow_tier(practice)


def _run(seed: str) -> dict[str, float]:
    from django.db import connection
    from django.utils import timezone

    from benchmarks._support import fresh_database, summary_ms
    from tests.factories import MemberFactory, active_membership

    results: dict[str, float] = {}
    practice, (tier, facial, _) = _practice("webhook", outbound_url="https://record.example/hook")
    now = timezone.now()
    members = [active_membership(tier=tier, member=MemberFactory(practice=practice, record_patient_id=f"P-{i}"),
                                 now=now).member for i in range(N_WEBHOOKS)]

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
    print(f"floor, one INSERT + COMMIT: {summary_ms(samples)}", flush=True)
    results["intake_p95_ms"] = _intake(practice, members)

    with fresh_database("bench_records_floor", template=seed) as name:
        floor = _floor(name)
        floor_check = _check()
    floor_rate = N_WEBHOOKS / floor["elapsed"]
    print(f"floor (set-based SQL, one transaction): {N_WEBHOOKS} treatments in {floor['elapsed']:.2f} s = "
          f"{floor_rate:,.0f} events/s; {floor['cpu'].describe(N_WEBHOOKS, 'event')}", flush=True)
    print(f"  {floor_check}", flush=True)
    with fresh_database("bench_records_ours", template=seed) as name:
        ours = _ours(name)
        check = _check()
    done = ours["counts"].get("processed", 0)
    rate = done / ours["elapsed"]
    print(f"ours (the inbox, batches of {ours['batch']}, one worker): {done} treatments → redemptions in "
          f"{ours['elapsed']:.2f} s = {rate:,.0f} events/s; {ours['cpu'].describe(sum(ours['counts'].values()), 'event')}",
          flush=True)
    print(f"  {check}", flush=True)
    print(f"ratio ours/floor: {rate / floor_rate:.3f} (rate), CPU per event "
          f"{ours['cpu'].per_item(done) / floor['cpu'].per_item(N_WEBHOOKS):.1f}× the floor's; "
          f"goal ≥ {GOAL_PER_S} treatment events/s", flush=True)
    results["processing_per_s"], results["floor_per_s"] = rate, floor_rate
    results.update(_fhir(now))
    return results


def _intake(practice, members) -> float:
    """Every member's treatment, POSTed signed through the whole stack (verify + store). Returns p95 ms."""
    from django.test import Client

    from benchmarks._support import cpu_meter, summary_ms
    from integrations.records.base import sign

    client = Client(HTTP_HOST="127.0.0.1")
    samples = []
    with cpu_meter() as cpu:   # CPU: this process's main thread and its PostgreSQL backend, per item
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
    print(f"webhook intake ({len(members)} signed POSTs, verify + store): {summary_ms(samples)}; "
          f"{cpu.describe(len(members), 'request')}", flush=True)
    return sorted(samples)[int(0.95 * (len(samples) - 1))] * 1000


def _ours(name: str) -> dict:
    """The inbox drains the stored treatments, batch after batch, until none is due."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from benchmarks._support import cpu_meter
    from integrations import inbox

    connection.ensure_connection()
    counts: dict[str, int] = {}
    with cpu_meter(name) as cpu:
        started = time.perf_counter()
        while batch := inbox.process_due(now=timezone.now()):
            for status, n in batch.items():
                counts[str(status)] = counts.get(str(status), 0) + n
        elapsed = time.perf_counter() - started
    return {"counts": counts, "elapsed": elapsed, "cpu": cpu, "batch": settings.INBOX_BATCH_SIZE}


def _floor(name: str) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from benchmarks._support import cpu_meter

    connection.ensure_connection()
    with cpu_meter(name) as cpu:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in FLOOR_SQL:
                cursor.execute(sql, {"now": timezone.now()})
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "cpu": cpu}


def _check() -> str:
    """What a side wrote, read back: every stored treatment processed, spent once, on the timeline and
    in the outbox, its appointment remembered; no facial left."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT (SELECT count(*) FROM integrations_inboundevent WHERE status = 'processed'),
                   (SELECT count(*) FROM integrations_inboundevent WHERE status <> 'processed'),
                   (SELECT count(DISTINCT idempotency_key) FROM memberships_ledgerentry WHERE kind = 'redeem'),
                   (SELECT count(*) FROM memberships_event WHERE kind = 'redeemed'),
                   (SELECT count(*) FROM integrations_delivery d JOIN memberships_event e ON e.id = d.event_id
                     WHERE e.kind = 'redeemed'),
                   (SELECT count(*) FROM integrations_recordappointment WHERE completed_at IS NOT NULL),
                   (SELECT count(*) FROM memberships_entitlementbalance b JOIN memberships_service s
                     ON s.id = b.service_id WHERE s.code = 'hydrafacial' AND b.balance <> 0)""")
        processed, other, spends, events, deliveries, appointments, left = cursor.fetchone()
    ok = (processed, other, spends, events, deliveries, appointments, left) == (N_WEBHOOKS, 0, N_WEBHOOKS, N_WEBHOOKS,
                                                                                N_WEBHOOKS, N_WEBHOOKS, 0)
    return (f"check: {processed} processed ({other} not), {spends} spends, {events} timeline events, "
            f"{deliveries} deliveries, {appointments} appointments, {left} facials left — "
            f"{'yes' if ok else 'NO'}, each treatment spent once")


# --- the floor: the same rows in set-based SQL ---------------------------------------------------------

FLOOR_SQL = [
    # The stored treatments with their member's open membership and the service, from the payloads.
    """
    CREATE TEMP TABLE treatment ON COMMIT DROP AS
    SELECT e.id AS inbound_id, e.practice_id, e.payload->'data'->>'appointment_id' AS appointment_ref,
           coalesce((e.payload->'data'->>'quantity')::bigint, 1) AS quantity, m.id AS membership_id, m.member_id,
           s.id AS service_id, s.name AS service_name, NULL::bigint AS lot_id, NULL::bigint AS balance_after,
           NULL::bigint AS entry_id
    FROM integrations_inboundevent e
    JOIN memberships_member mb
      ON mb.practice_id = e.practice_id AND mb.record_patient_id = e.payload->'data'->>'patient_id'
    JOIN memberships_membership m ON m.member_id = mb.id AND m.status <> 'cancelled'
    JOIN memberships_service s ON s.practice_id = e.practice_id AND s.code = e.payload->'data'->>'service_code'
    WHERE e.status = 'received' AND e.source LIKE 'record:%%'
    """,
    "SELECT 1 FROM memberships_membership WHERE id IN (SELECT membership_id FROM treatment) ORDER BY id FOR UPDATE",
    """
    INSERT INTO integrations_recordappointment (practice_id, appointment_ref, cancelled_at, cancel_reason,
                                                completed_at, first_seen_at)
    SELECT practice_id, appointment_ref, NULL, '', %(now)s, %(now)s FROM treatment ON CONFLICT DO NOTHING
    """,
    """
    WITH moved AS (
      UPDATE memberships_entitlementbalance b SET balance = b.balance - t.quantity FROM treatment t
      WHERE b.membership_id = t.membership_id AND b.service_id = t.service_id
        AND b.balance - b.reserved >= t.quantity
      RETURNING b.membership_id, b.service_id, b.balance)
    UPDATE treatment t SET balance_after = moved.balance FROM moved
    WHERE moved.membership_id = t.membership_id AND moved.service_id = t.service_id
    """,
    """
    WITH pick AS (
      SELECT DISTINCT ON (l.membership_id, l.service_id) l.id, l.membership_id, l.service_id
      FROM memberships_creditlot l JOIN treatment t USING (membership_id, service_id) WHERE l.remaining > 0
      ORDER BY l.membership_id, l.service_id, l.expires_at_cycle ASC NULLS LAST, l.created_at, l.id),
    drawn AS (
      UPDATE memberships_creditlot l SET remaining = l.remaining - t.quantity
      FROM pick JOIN treatment t USING (membership_id, service_id) WHERE l.id = pick.id
      RETURNING l.id, l.membership_id, l.service_id)
    UPDATE treatment t SET lot_id = drawn.id FROM drawn
    WHERE drawn.membership_id = t.membership_id AND drawn.service_id = t.service_id
    """,
    """
    WITH entries AS (
      INSERT INTO memberships_ledgerentry (membership_id, service_id, kind, source, quantity, frozen_quantity,
        balance_after, lot_id, reverses_id, cycle_key, actor_type, actor_user_id, actor_label, reason, dispute,
        idempotency_key, created_at)
      SELECT membership_id, service_id, 'redeem', '', -quantity, 0, balance_after, lot_id, NULL, '', 'record', NULL,
             'webhook', 'Treatment reported by the record', false,
             'record:' || practice_id || ':appt:' || appointment_ref || ':spend', %(now)s
      FROM treatment RETURNING id, membership_id)
    UPDATE treatment t SET entry_id = entries.id FROM entries WHERE entries.membership_id = t.membership_id
    """,
    """
    WITH events AS (
      INSERT INTO memberships_event (practice_id, member_id, membership_id, kind, summary, payload, actor_type,
                                     actor_user_id, created_at)
      SELECT practice_id, member_id, membership_id, 'redeemed', 'Redeemed ' || quantity || ' ' || service_name,
             jsonb_build_object('entry_id', entry_id, 'service_id', service_id, 'quantity', quantity,
                                'balance_after', balance_after), 'record', NULL, %(now)s
      FROM treatment RETURNING id, practice_id, created_at)
    INSERT INTO integrations_delivery (event_id, practice_id, destination, status, attempts, next_attempt_at,
                                       last_error, note, result, created_at, finished_at)
    SELECT id, practice_id, 'record', 'pending', 0, created_at, '', '', '{}', created_at, NULL FROM events
    """,
    """
    UPDATE integrations_inboundevent e SET status = 'processed', error = 'redeemed', attempts = e.attempts + 1,
           processed_at = %(now)s, next_attempt_at = NULL
    FROM treatment t WHERE e.id = t.inbound_id
    """,
]


def _fhir(now) -> dict[str, float]:
    """FHIR delivery of a member's chart, first write and unchanged re-sync."""
    from django.conf import settings

    from benchmarks._support import cpu_meter, summary_ms
    from integrations.records import get_adapter
    from integrations.records.selectors import member_state
    from memberships.models import Member
    from tests.factories import MemberFactory, active_membership
    from tests.support.fhir_server import LocalFhirServer

    settings.RECORD_ALLOW_PRIVATE_URLS = True    # the FHIR server is on this machine (http://127.0.0.1)
    results: dict[str, float] = {}
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
