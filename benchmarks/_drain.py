"""A benchmark's worker process: drains the webhook inbox with the function the django-q task runs
(`integrations.inbox.process_due`), talking to the benchmark over stdin/stdout:

    python -m benchmarks._drain [--follow] [--seconds 300] [--profile FILE]

It sets up Django and connects, prints `ready`, and waits for a line on stdin (`go`). Then it
processes due events until none is left `received` — with `--follow` it keeps polling for new
ones until a second line arrives (`finish`) and only then drains to empty — or until `--seconds`
have passed. It prints `done <counts as JSON> <seconds>` and keeps running (its connection open)
until stdin closes, so the benchmark can read its CPU and its backend's before it exits.
`--profile FILE` writes a cProfile of the draining to FILE, in CPU time (not wall time, which on a
busy machine is mostly waiting); the profiler's own cost inflates functions called very often."""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._drain")
    parser.add_argument("--follow", action="store_true", help="keep polling until told to finish")
    parser.add_argument("--seconds", type=float, default=300.0, help="stop after this long")
    parser.add_argument("--profile", default="", help="write a cProfile of the draining here")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings.bench")
    import django

    django.setup()
    from django.db import connection
    from django.db.models import Q
    from django.utils import timezone

    from integrations import inbox
    from integrations.models import InboundEvent, InboundStatus
    from integrations.processors import stripe  # noqa: F401  (imported before the clock starts)

    connection.ensure_connection()
    lines: queue.Queue = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            lines.put(line.strip())
        lines.put(None)  # EOF

    threading.Thread(target=read_stdin, daemon=True).start()
    print("ready", flush=True)
    if lines.get() is None:
        return 0

    def due_left() -> bool:
        return InboundEvent.objects.filter(status=InboundStatus.RECEIVED).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())).exists()

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU time, as the benchmarks report it
        profiler.enable()
    started = time.perf_counter()
    deadline = started + args.seconds
    finishing = not args.follow
    eof = False
    total: dict[str, int] = {}
    while time.perf_counter() < deadline:
        counts = inbox.process_due(now=timezone.now())
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
        if counts:
            continue
        if not finishing:
            try:
                eof = lines.get(timeout=0.05) is None
                finishing = True
            except queue.Empty:
                pass
            continue
        if not due_left():
            break
        time.sleep(0.01)  # the rest is held by another worker: look again when it has committed
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    print(f"done {json.dumps(total)} {elapsed:.4f}", flush=True)
    while not eof:
        eof = lines.get() is None
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
