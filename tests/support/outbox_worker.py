"""A stand-alone outbox worker for the crash tests: delivers one delivery and dies by SIGKILL inside
the provider call, right after the provider accepted (a line written to the record file, flushed to
disk, is the provider's copy). Nothing of ours runs after it: the database server rolls back what
the worker had not committed.

    DATABASE_URL=... python -m tests.support.outbox_worker DELIVERY_ID NOW RECORD_FILE sms
    DATABASE_URL=... python -m tests.support.outbox_worker DELIVERY_ID NOW RECORD_FILE peer NAME [--repeatable]

`sms`: the member_message destination as it is, with Twilio replaced by a provider that accepts and
then the worker dies. `peer`: a destination named NAME (the test registers one of that name too)
whose peer accepts and then the worker dies; `--repeatable` when its peer is idempotent.
"""

import argparse
import os
import signal
import sys
from datetime import datetime


def accept_then_die(record_file: str, line: str) -> None:
    with open(record_file, "a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("delivery_id", type=int)
    parser.add_argument("now")
    parser.add_argument("record_file")
    parser.add_argument("mode", choices=["sms", "peer"])
    parser.add_argument("name", nargs="?", default="")
    parser.add_argument("--repeatable", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings.test")
    import django

    django.setup()
    from integrations import outbox
    from integrations.messaging import sms

    if args.mode == "sms":
        class TwilioAcceptsThenTheWorkerDies:
            def send(self, *, to: str, body: str, status_callback: str = ""):
                accept_then_die(args.record_file, f"sms {to}")

        sms.get_backend = TwilioAcceptsThenTheWorkerDies
    else:
        class PeerAcceptsThenTheWorkerDies:
            name = args.name
            repeatable = args.repeatable

            def wants(self, event):
                return False

            def required_stage(self, event):
                return "observe"

            def describe(self, event):
                return f"tell the peer about event {event.pk}"

            def deliver(self, event, *, delivery, now):
                accept_then_die(args.record_file, f"peer {delivery.idempotency_key}")

        outbox.register(PeerAcceptsThenTheWorkerDies())
    status = outbox.deliver_one(args.delivery_id, now=datetime.fromisoformat(args.now))
    print("survived", status, flush=True)            # the test expects SIGKILL before this
    return 0


if __name__ == "__main__":
    sys.exit(main())
