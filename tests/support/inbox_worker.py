"""A stand-alone inbox worker for the crash test: processes received webhooks one at a time until
none is left. With --slow, each charge waits inside its transaction; with --hang-after K, the charge
after the first K stops inside its transaction for good, once it has printed "inside", so a SIGKILL
lands mid-way whatever the machine's speed.

    DATABASE_URL=... python -m tests.support.inbox_worker [--slow SECONDS] [--hang-after K]
"""

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--hang-after", type=int, default=-1)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings.test")
    import django

    django.setup()
    from django.utils import timezone

    from billing import dunning_hooks
    from integrations import inbox

    if args.slow or args.hang_after >= 0:
        original, charges = dunning_hooks.charge_succeeded, []

        def linger(**kwargs):
            charges.append(1)
            if 0 <= args.hang_after < len(charges):
                print("inside", flush=True)
                while True:                  # until the SIGKILL
                    time.sleep(1)
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
