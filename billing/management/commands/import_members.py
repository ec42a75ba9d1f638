"""python manage.py import_members FILE [--practice SLUG] [--dry-run] [--only-valid] [--map "Header=field"]
[--date-order mdy|dmy]"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.models import ImportStatus
from billing.sheets.batches import column_rows, create_import_batch, run_import_batch
from memberships.models import Practice


class Command(BaseCommand):
    help = "Import a membership spreadsheet (CSV or XLSX): check every row, then write it to the ledger."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--practice", help="Practice slug (needed when there is more than one).")
        parser.add_argument("--dry-run", action="store_true", help="Check and show the plan; write nothing.")
        parser.add_argument("--only-valid", action="store_true",
                            help="Import the valid rows and skip the rejected ones (they are listed).")
        parser.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD",
                            help="Say what a column holds, e.g. --map 'Plan name=tier' or 'Notes=' to ignore it.")
        parser.add_argument("--date-order", choices=["mdy", "dmy"], default="",
                            help="How to read dates like 03/04/2026 in a column where no date shows the order: "
                                 "mdy (month/day) or dmy (day/month); default: the IMPORT_DATE_ORDER setting.")
        parser.add_argument("--user", help="Username recorded as the importer.")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        practice = self._practice(options["practice"])
        mapping = {}
        for item in options["map"]:
            header, sep, field = item.partition("=")
            if not sep:
                raise CommandError(f"--map takes HEADER=FIELD, not {item!r}")
            mapping[header.strip()] = field.strip()
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}")
        batch = create_import_batch(practice=practice, file_name=path.name, content=path.read_bytes(),
                                    dry_run=options["dry_run"], only_valid_rows=options["only_valid"],
                                    mapping_override=mapping, date_order=options["date_order"], user=user,
                                    now=timezone.now())
        last = {"pct": -1}

        def progress(phase: str, done: int, total: int) -> None:
            pct = int(100 * done / total) if total else 100
            if pct // 10 != last["pct"] // 10 or done == total:
                last["pct"] = pct
                word = "Checked" if phase == "check" else "Imported"
                self.stdout.write(f"{word} {done}/{total} rows ({pct}%)")

        batch = run_import_batch(batch_id=batch.pk, now=timezone.now(), on_progress=progress)
        self._report(batch)
        if batch.status in (ImportStatus.REJECTED, ImportStatus.FAILED):
            raise CommandError(f"Nothing was imported ({batch.get_status_display().lower()}); see the errors above.")

    def _practice(self, slug: str | None) -> Practice:
        if slug:
            try:
                return Practice.objects.get(slug=slug)
            except Practice.DoesNotExist:
                raise CommandError(f"No practice {slug!r}") from None
        practices = list(Practice.objects.all()[:2])
        if len(practices) != 1:
            raise CommandError("Say which practice with --practice SLUG.")
        return practices[0]

    def _report(self, batch) -> None:
        out = self.stdout
        out.write(f"Import {batch.pk} of {batch.file_name} (sha256 {batch.sha256[:12]}…): "
                  f"{batch.get_status_display()}")
        columns = column_rows(batch.report)
        if columns:
            out.write("Columns:")
        for header, field, note in columns:
            out.write(f"  {header} → {field or 'ignored'}" + (f": {note}" if note else ""))
        for item in batch.report.get("suggestions", []):
            target = item["target"] or "balance:<service code>"
            what = f"the {item['service']} balance" if item["service"] else "a balance"
            out.write(self.style.WARNING(
                f"Column '{item['header']}' looks like {what}: run again with --map '{item['header']}={target}' "
                f"to read it so, or --map '{item['header']}=' to ignore it."))
        for item in batch.report.get("left_out", []):
            out.write(f"Line {item['line']} left out: {item['why']}")
        verb = "would be" if batch.dry_run else ("were" if batch.status == ImportStatus.IMPORTED else "would be")
        out.write(f"{batch.total_rows} rows: {batch.created_count} {verb} created, {batch.changed_count} changed, "
                  f"{batch.unchanged_count} unchanged, {batch.rejected_count} rejected.")
        for action in batch.report.get("actions", [])[:50]:
            number = action["member_number"] or "(next number)"
            out.write(f"  line {action['line']}: {action['action']} {number}: {action['detail']}")
        if len(batch.report.get("actions", [])) > 50:
            out.write(f"  … and {len(batch.report['actions']) - 50} more")
        for warning in batch.report.get("warnings", []):
            where = f"line {warning['line']}" if warning["line"] else "file"
            out.write(self.style.WARNING(f"  worth a look, {where}: {warning['message']}"))
        for error in batch.errors:
            where = f"line {error['line']}" if error["line"] else "file"
            column = f", column '{error['column']}'" if error["column"] else ""
            out.write(self.style.ERROR(f"  {where}{column}: {error['message']}"))
        if batch.report.get("skipped_rows"):
            out.write(self.style.WARNING(
                f"Only the valid rows were imported; skipped lines: {', '.join(map(str, batch.report['skipped_rows']))}"))
