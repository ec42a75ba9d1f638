"""Snapshots of the ledger and the spreadsheet view for reconciliation (reads only), and the
registry through which `integrations` provides the processor's and the record's snapshots (billing
never imports integrations)."""

from __future__ import annotations

import logging
import re
from typing import Callable

from billing.models import ImportBatch, ImportStatus, SheetRow
from memberships.models import EntitlementBalance, Membership, MembershipStatus, Practice
from memberships.services.location_prices import paid_price_expression

from .compare import LedgerRow, SheetSnapshot, SkippedRow

logger = logging.getLogger(__name__)


def ledger_rows(*, practice_id: int) -> list[LedgerRow]:
    """One row per member with a membership: the open one, else the latest cancelled one."""
    chosen: dict[int, dict] = {}
    rows = (Membership.objects.filter(member__practice_id=practice_id)
            # what it pays: a location's own price for the tier where it has one
            .annotate(paid_cents=paid_price_expression("tier"), pending_paid_cents=paid_price_expression("pending_tier"))
            .values("id", "member_id", "member__member_number", "member__processor_customer_id",
                    "member__record_patient_id", "tier__code", "tier__name", "paid_cents", "tier__currency",
                    "tier__interval", "pending_tier__name", "pending_paid_cents", "pending_tier__currency",
                    "pending_tier__interval", "status", "processor_subscription_id")
            .order_by("member_id", "id"))
    for row in rows.iterator(chunk_size=5000):
        current = chosen.get(row["member_id"])
        if current is None or current["status"] == MembershipStatus.CANCELLED:
            chosen[row["member_id"]] = row
    balances: dict[int, dict[str, int]] = {}
    membership_ids = {row["id"] for row in chosen.values()}
    for bal in (EntitlementBalance.objects.filter(membership__member__practice_id=practice_id)
                .values_list("membership_id", "service__code", "balance").iterator(chunk_size=5000)):
        if bal[0] in membership_ids and bal[2]:
            balances.setdefault(bal[0], {})[bal[1]] = bal[2]
    return [
        LedgerRow(member_id=row["member_id"], member_number=row["member__member_number"],
                  tier_code=row["tier__code"], tier_name=row["tier__name"], status=row["status"],
                  price_cents=row["paid_cents"], balances=balances.get(row["id"], {}),
                  processor_subscription_id=row["processor_subscription_id"],
                  processor_customer_id=row["member__processor_customer_id"],
                  record_patient_id=row["member__record_patient_id"], currency=row["tier__currency"],
                  interval=row["tier__interval"], pending_tier_name=row["pending_tier__name"] or "",
                  pending_price_cents=row["pending_paid_cents"],
                  pending_currency=row["pending_tier__currency"] or "", pending_interval=row["pending_tier__interval"] or "")
        for row in chosen.values()
    ]


def sheet_rows(*, practice_id: int) -> list[SheetSnapshot] | None:
    """The last imported spreadsheet view; None when nothing was imported yet."""
    rows = list(SheetRow.objects.filter(practice_id=practice_id)
                .values_list("member_number", "tier_code", "status", "price_cents", "balances",
                             "processor_subscription_id"))
    if not rows:
        return None
    return [SheetSnapshot(member_number=n, tier_code=t, status=s, price_cents=p, balances=b or {},
                          processor_subscription_id=sub) for n, t, s, p, b, sub in rows]


_NAMES_MEMBER = re.compile(r"\bmember [^\s,']*\d|\bis that of ")


def skipped_rows(*, practice_id: int) -> list[SkippedRow]:
    """The rows the practice's last import skipped (it imported only the valid ones), each with the
    first problem found in it: none when it imported every row."""
    batch = (ImportBatch.objects.filter(practice_id=practice_id, dry_run=False, status=ImportStatus.IMPORTED)
             .only("file_name", "finished_at", "created_at", "report", "errors").order_by("-created_at", "-id").first())
    lines = (batch.report or {}).get("skipped_rows", []) if batch else []
    if not lines:
        return []
    reasons: dict[int, str] = {}
    for error in batch.errors or []:
        where = f"{error['column']}: " if error.get("column") else ""
        # An error naming a ledger member ("already member M0001's (Ana Garcia)", "that of Ana Garcia
        # (M0001)") stays on the import's page, which audits who it shows; this page names no one else.
        message = ("it names another member; see the import's report" if _NAMES_MEMBER.search(error["message"])
                   else error["message"])
        reasons.setdefault(error["line"], f"{where}{message}")
    imported_on = f"{(batch.finished_at or batch.created_at):%Y-%m-%d}"
    return [SkippedRow(line=line, file_name=batch.file_name, imported_on=imported_on,
                       reason=reasons.get(line, "rejected at the import"))
            for line in lines if line]


class SourceSkipped(Exception):
    """A side that is deliberately not compared (e.g. the builtin record is the ledger itself)."""


# side → fn(practice=, ledger=) -> rows. A source raises SourceSkipped to say why it has nothing to
# compare; any other error means the side could not be read this time.
Source = Callable[..., list]
_SOURCES: dict[str, Source] = {}


def register_source(side: str, source: Source) -> Source:
    _SOURCES[side] = source
    return source


def registered_sources() -> dict[str, Source]:
    return dict(_SOURCES)


def read_side(side: str, *, practice: Practice, ledger: list[LedgerRow],
              sources: dict[str, Source] | None = None) -> tuple[list | None, str]:
    """The side's rows (None when not compared) and a note saying why not."""
    source = (sources if sources is not None else _SOURCES).get(side)
    if source is None:
        return None, f"{side}: no source is configured"
    try:
        return list(source(practice=practice, ledger=ledger)), ""
    except SourceSkipped as skipped:
        return None, f"{side}: {skipped}"
    except Exception as exc:  # the run goes on with the sides it could read, and says so
        logger.warning("reconciliation: the %s side of practice %s could not be read: %s", side, practice.pk,
                       type(exc).__name__)
        return None, f"{side}: could not be read this time; it is tried again at the next run"
