"""The member page's "send me a link" (PostgreSQL, database `bench_member_link`, 20,000 members):
the server time of POST /me/link/ for an address that is a member's and for one that is not,
interleaved at random (measured in process through Django's test client: middleware, session, CSRF
off, the form, the stored request, the template), beside a floor measured in the same run — GET of
the same page (no write) — and the CPU of this process and its PostgreSQL backend per request.
The two answers must be one timing class: the page stores the request and queues the lookup, so the
difference between matched and unknown p50 should be within the noise (a few % of the floor).
The queued half (`send_links`: the lookup, the link, the outbox rows) is timed too, matched and not:
that is where the work differs, off the request path."""

from __future__ import annotations

import os
import random
import time

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "20000"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "400"))


def _seed():
    from memberships.models import Member, Practice

    practice = Practice.objects.create(name="Bench Aesthetics", slug="bench")
    Member.objects.bulk_create(
        [Member(practice=practice, member_number=f"B{i:06d}", first_name="M", last_name=f"L{i}",
                email=f"member{i}@example.com", phone=f"+1415{i:07d}", sms_consent=True) for i in range(MEMBERS)],
        batch_size=5000)


def _timed(client, requests):
    samples = {"matched": [], "unknown": [], "floor": []}
    for kind, path, data in requests:
        started = time.perf_counter()
        response = client.post(path, data) if data is not None else client.get(path)
        samples[kind].append(time.perf_counter() - started)
        assert response.status_code == 200, (kind, response.status_code)
    return samples


def run() -> None:
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from portal.me import links
    from portal.models import LinkRequest

    from ._support import cpu_meter, fresh_database, percentile, summary_ms, test_environment

    test_environment()
    settings.PORTAL_LINK_PER_ADDRESS_PER_HOUR = settings.PORTAL_LINK_PER_IP_PER_HOUR = 10 ** 9
    with fresh_database("bench_member_link") as name:
        _seed()
        print(f"seeded {MEMBERS:,} members")
        client = Client(HTTP_HOST="localhost")
        rng = random.Random(11)
        path = reverse("portal:me:link")

        def request(kind):
            if kind == "floor":
                return kind, path, None
            n = rng.randrange(MEMBERS)
            address = f"member{n}@example.com" if kind == "matched" else f"stranger{n}@example.net"
            return kind, path, {"address": address}

        _timed(client, [request(k) for k in ("matched", "unknown", "floor") * 20])        # warm up
        plan = [request(k) for k in ("matched", "unknown", "floor") * SAMPLES]
        rng.shuffle(plan)
        with cpu_meter(name) as cpu:
            samples = _timed(client, plan)
        for kind in ("matched", "unknown", "floor"):
            print(f"{kind:>8} ({'POST, a member' if kind == 'matched' else 'POST, nobody' if kind == 'unknown' else 'GET, floor'}): "
                  f"{summary_ms(samples[kind])}")
        gap = percentile(samples["matched"], 50) - percentile(samples["unknown"], 50)
        print(f"matched − unknown p50: {gap * 1000:+.3f} ms ({gap / percentile(samples['floor'], 50) * 100:+.1f}% "
              f"of the floor's p50)")
        print(f"all requests: {cpu.describe(len(plan), 'request')}")

        pending = list(LinkRequest.objects.filter(handled_at__isnull=True).order_by("id"))
        from django.db import connection

        for matched in (True, False):
            rows = [r for r in pending if ("@example.com" in r.address) == matched][:SAMPLES // 2]
            with cpu_meter(name) as cpu:
                started = time.perf_counter()
                for row in rows:
                    links.send_links(request_id=row.pk, now=timezone.now())
                elapsed = time.perf_counter() - started
            label = "a member" if matched else "nobody"
            print(f"queued send_links, {label}: {elapsed / len(rows) * 1000:.2f} ms each; "
                  f"{cpu.describe(len(rows), 'request')}")
        connection.close()
