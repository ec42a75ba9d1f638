"""A stand-alone inbox worker for the crash test: processes received webhooks one at a time until
none is left. With --slow, each charge waits inside its transaction, so a SIGKILL lands mid-way.

    DATABASE_URL=... python -m tests.support.inbox_worker [--slow SECONDS]
"""

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=0.0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings.test")
    import django

    django.setup()
    from django.utils import timezone

    from billing import dunning_hooks
    from integrations import inbox

    if args.slow:
        original = dunning_hooks.charge_succeeded

        def linger(**kwargs):
            time.sleep(args.slow)
            return original(**kwargs)

        dunning_hooks.charge_succeeded = linger
    idle = 0
    while idle < 20:
        counts = inbox.process_due(now=timezone.now(), limit=1)
        idle = 0 if counts else idle + 1
        if not counts:
            time.sleep(0.05)
    print("idle", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
