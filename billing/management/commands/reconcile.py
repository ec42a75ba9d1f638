"""python manage.py reconcile [--practice SLUG] — compare ledger, spreadsheet, processor and record."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.reconciliation.runs import run_reconciliation
from billing.reconciliation.selectors import discrepancies
from memberships.models import Practice


class Command(BaseCommand):
    help = "Compare the ledger with the last imported spreadsheet, the processor and the record; list every discrepancy."

    def add_arguments(self, parser):
        parser.add_argument("--practice", help="Practice slug (default: every practice).")
        parser.add_argument("--quiet", action="store_true", help="Only the counts.")

    def handle(self, *args, **options):
        practices = Practice.objects.all()
        if options["practice"]:
            practices = practices.filter(slug=options["practice"])
            if not practices.exists():
                raise CommandError(f"No practice {options['practice']!r}")
        for practice in practices.order_by("id"):
            run = run_reconciliation(practice=practice, now=timezone.now(), trigger="command")
            self.stdout.write(f"{practice.slug}: {run.members_compared} members, sides {', '.join(run.sources)}; "
                              f"{run.total} discrepancies "
                              + (", ".join(f"{k} {v}" for k, v in sorted(run.counts.items())) or ""))
            for note in run.notes:
                self.stdout.write(self.style.WARNING(f"  not compared: {note}"))
            if not options["quiet"]:
                for d in discrepancies(practice_id=practice.pk, show="all").order_by("member_number", "kind"):
                    state = " (resolved)" if d.resolved_at else ""
                    self.stdout.write(f"  {d.member_number or '-'}\t{d.kind}\t{d.message}{state}")
