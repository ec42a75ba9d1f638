"""The reconciliation engine: a pure function over snapshots of the four sides.

    reconcile(ledger_rows, sheet_rows, processor_rows, record_rows) -> list[Discrepancy]

No database, no network: the fetchers (`billing.reconciliation.snapshots` for the ledger and the
sheet, the sources that `integrations` registers for the processor and the record) build the
snapshots; this compares them member by member. A side passed as None was not read (and is not compared); an empty
list means it was read and holds nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping

from memberships.display import format_money

TIER_MISMATCH = "tier_mismatch"
PRICE_MISMATCH = "price_mismatch"
STATUS_MISMATCH = "status_mismatch"
BALANCE_MISMATCH = "balance_mismatch"
MISSING = "missing"
UNPAID_ENTITLED = "unpaid_entitled"

# Ledger statuses in which the member may use the membership.
ENTITLED = {"active"}
# Processor statuses in our words.
PROCESSOR_STATUS = {
    "active": "active", "trialing": "active", "past_due": "past_due", "unpaid": "past_due",
    "canceled": "cancelled", "incomplete_expired": "cancelled", "incomplete": "pending", "paused": "paused",
}
# Still owed by the member. Not "uncollectible" (Stripe: the practice wrote it off; the dunning case
# closed as written off) nor "void": nothing more is asked of the member for those.
UNPAID_INVOICE = {"open"}
# A live subscription the processor will end at the period end (`cancel_at_period_end`, or a
# `cancel_at` date): what a cancellation made at the processor "at period end" looks like.
ENDING = "ending"
# Which ledger statuses each side's status is compatible with (lapsed is past due gone stale).
COMPATIBLE = {
    "active": {"active"}, "past_due": {"past_due", "lapsed"}, "paused": {"paused"},
    "cancelled": {"cancelled", "lapsed"}, "pending": {"pending"}, "lapsed": {"lapsed", "past_due", "cancelled"},
    ENDING: {"cancelled", "lapsed"},
}


@dataclass(frozen=True, slots=True)
class LedgerRow:
    member_id: int
    member_number: str
    tier_code: str
    tier_name: str
    status: str
    price_cents: int
    balances: dict[str, int] = field(default_factory=dict)
    processor_subscription_id: str = ""
    processor_customer_id: str = ""
    record_patient_id: str = ""
    currency: str = "usd"
    interval: str = ""                   # the tier's billing interval ("" not compared)
    # A tier change scheduled for the next cycle: the processor is moved to its price at once (the
    # price the next invoice must carry), so that is what the processor is expected to bill.
    pending_tier_name: str = ""
    pending_price_cents: int | None = None
    pending_currency: str = ""
    pending_interval: str = ""


@dataclass(frozen=True, slots=True)
class SheetSnapshot:
    member_number: str
    tier_code: str
    status: str
    price_cents: int | None = None
    balances: dict[str, int] = field(default_factory=dict)
    processor_subscription_id: str = ""


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row of the last imported spreadsheet that the import skipped (the manager chose to import
    only the valid rows): in the spreadsheet, not in the ledger."""

    line: int
    file_name: str
    imported_on: str                 # the import's date, as the page shows it
    reason: str


@dataclass(frozen=True, slots=True)
class ProcessorRow:
    subscription_id: str
    customer_id: str
    status: str                      # the processor's own word (Stripe: active, past_due, canceled…)
    price_cents: int | None
    currency: str = "usd"
    price_ref: str = ""
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    latest_invoice_id: str = ""
    latest_invoice_status: str = ""
    collection_paused: bool = False
    membership_ref: str = ""         # our metadata, when we created it
    interval: str = ""               # the price's billing interval: month, year ("" unknown)
    interval_count: int = 1
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None  # when the processor will end the subscription, if it will


@dataclass(frozen=True, slots=True)
class RecordRow:
    member_id: int
    tier: str | None                 # code or name as the record holds it; None: no membership there
    status: str | None
    flags: tuple[str, ...] = ()
    found: bool = True               # False: the patient is not in the record
    # The chart flag the ledger says should be up ("" none); None: not compared (the stage does not
    # write flags to the record yet).
    flag_expected: str | None = None


@dataclass(frozen=True, slots=True)
class Discrepancy:
    member_number: str
    member_id: int | None
    kind: str
    sides: str                       # e.g. "ledger/processor"
    message: str
    values: dict

    @property
    def fingerprint(self) -> str:
        data = json.dumps([self.member_number, self.kind, self.sides, self.values], sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()


def _norm(text: str | None) -> str:
    return " ".join(str(text or "").lower().replace("-", " ").replace("_", " ").split())


def _money(cents: int | None, currency: str = "usd") -> str:
    return "unknown" if cents is None else format_money(cents, currency)


def _price(cents: int | None, currency: str, interval: str, *, with_currency: bool, with_interval: bool) -> str:
    """An amount as the page shows money ("$199.00", "CA$199.00"); with `with_currency` (the sides
    disagree on it) the currency's code follows: "$199.00 (USD)"."""
    text = _money(cents, currency or "usd")
    if with_currency and cents is not None:
        text = f"{text} ({(currency or 'usd').upper()})"
    return f"{text}/{interval}" if with_interval and interval else text


def _processor_status(row: ProcessorRow) -> str:
    if row.status in ("active", "trialing") and (row.cancel_at_period_end or row.cancel_at is not None):
        return ENDING
    if row.collection_paused and row.status in ("active", "trialing"):
        return "paused"
    return PROCESSOR_STATUS.get(row.status, row.status)


def _processor_interval(row: ProcessorRow) -> str:
    return row.interval if row.interval_count in (0, 1) else f"{row.interval_count} {row.interval}"


@dataclass(frozen=True, slots=True)
class _Billed:
    """What the processor is expected to bill: the tier's price, or the scheduled tier's."""

    tier: str                            # e.g. "the Glow tier", "the Luxe tier, scheduled from the next cycle,"
    cents: int
    currency: str
    interval: str


def _expected_billing(led: LedgerRow) -> _Billed:
    if led.pending_price_cents is not None:
        return _Billed(f"the {led.pending_tier_name} tier, scheduled from the next cycle,", led.pending_price_cents,
                       led.pending_currency or led.currency, led.pending_interval or led.interval)
    return _Billed(f"the {led.tier_name} tier", led.price_cents, led.currency, led.interval)


def _price_difference(led: LedgerRow, sub: ProcessorRow) -> tuple[str, dict] | None:
    """(message, values) when the processor bills another amount, currency or interval than expected."""
    want = _expected_billing(led)
    interval = _processor_interval(sub)
    amount_differs = sub.price_cents is not None and sub.price_cents != want.cents
    currency_differs = bool(sub.currency) and sub.currency.lower() != (want.currency or "usd").lower()
    interval_differs = bool(interval and want.interval) and interval != want.interval
    if not (amount_differs or currency_differs or interval_differs):
        return None
    values: dict = {"ledger": want.cents, "processor": sub.price_cents}
    if currency_differs:
        values.update(ledger_currency=want.currency.lower(), processor_currency=sub.currency.lower())
    if interval_differs:
        values.update(ledger_interval=want.interval, processor_interval=interval)
    if led.pending_price_cents is not None:
        values["scheduled_tier"] = led.pending_tier_name
    shown = dict(with_currency=currency_differs, with_interval=interval_differs)
    return (f"Pays {_price(sub.price_cents, sub.currency, interval, **shown)} at the processor; {want.tier} costs "
            f"{_price(want.cents, want.currency, want.interval, **shown)}", values)


class _Findings(list):
    """The discrepancies one comparison finds, in the order found."""

    def add(self, member_number: str, member_id: int | None, kind: str, sides: str, message: str, **values) -> None:
        self.append(Discrepancy(member_number, member_id, kind, sides, message, values))


def reconcile(ledger_rows: Iterable[LedgerRow], sheet_rows: Iterable[SheetSnapshot] | None,
              processor_rows: Iterable[ProcessorRow] | None,
              record_rows: Iterable[RecordRow] | None,
              services: Mapping[str, tuple[str, bool]] | None = None,
              skipped: Iterable[SkippedRow] = ()) -> list[Discrepancy]:
    """Every difference between the sides, member by member, each with its kind. `services`: service
    code → (name, whether its balance is dollars in cents), so a balance reads "HydraFacial: 1" or
    "$50.00" rather than by its code and in cents. `skipped`: the last import's rows it did not import."""
    ledger = {row.member_number: row for row in ledger_rows}
    out: list[Discrepancy] = []
    if sheet_rows is not None:
        out += _sheet_differences(ledger, sheet_rows, services or {})
    for row in skipped:
        out.append(Discrepancy("", None, MISSING, "sheet/ledger",
                               f"Line {row.line} of {row.file_name} (imported {row.imported_on}) was skipped, so it is "
                               f"in the spreadsheet but not in the ledger: {row.reason}",
                               {"line": row.line, "file": row.file_name, "imported": row.imported_on, "ledger": None}))
    if processor_rows is not None:
        out += _processor_differences(ledger, processor_rows)
    if record_rows is not None:
        out += _record_differences(ledger, record_rows)
    out.sort(key=lambda d: (d.member_number, d.kind, d.sides))
    return out


def _balance_words(code: str, sheet: int, ledger: int, services: Mapping[str, tuple[str, bool]]) -> str:
    name, dollars = services.get(code, (code, False))
    shown = _money if dollars else str
    return f"{name} balance is {shown(sheet)} in the spreadsheet, {shown(ledger)} in the ledger"


def _sheet_differences(ledger: dict[str, LedgerRow], sheet_rows: Iterable[SheetSnapshot],
                       services: Mapping[str, tuple[str, bool]]) -> list[Discrepancy]:
    found = _Findings()
    sheet = {row.member_number: row for row in sheet_rows}
    for number, s in sheet.items():
        led = ledger.get(number)
        if led is None:
            found.add(number, None, MISSING, "sheet/ledger", "In the spreadsheet but not in the ledger",
                      sheet=s.tier_code, ledger=None)
            continue
        if s.tier_code != led.tier_code:
            found.add(number, led.member_id, TIER_MISMATCH, "sheet/ledger",
                      f"Tier is {s.tier_code} in the spreadsheet, {led.tier_code} in the ledger",
                      sheet=s.tier_code, ledger=led.tier_code)
        if led.status not in COMPATIBLE.get(s.status, {s.status}):
            found.add(number, led.member_id, STATUS_MISMATCH, "sheet/ledger",
                      f"Status is {s.status} in the spreadsheet, {led.status} in the ledger",
                      sheet=s.status, ledger=led.status)
        # A cancelled membership bills nothing: the price a sheet keeps for it ("$0", the old price)
        # is no one's to pay, so it is not compared (a status difference says the rest).
        if (s.price_cents is not None and s.price_cents != led.price_cents
                and "cancelled" not in (s.status, led.status)):
            found.add(number, led.member_id, PRICE_MISMATCH, "sheet/ledger",
                      f"Price is {_money(s.price_cents)} in the spreadsheet, {_money(led.price_cents)} for the "
                      f"ledger's tier", sheet=s.price_cents, ledger=led.price_cents)
        for code in sorted(set(s.balances) | set(led.balances)):
            a, b = s.balances.get(code, 0), led.balances.get(code, 0)
            if a != b:
                found.add(number, led.member_id, BALANCE_MISMATCH, "sheet/ledger",
                          _balance_words(code, a, b, services),
                          service=code, sheet=a, ledger=b)
    for number, led in ledger.items():
        if number not in sheet and led.status != "cancelled":
            found.add(number, led.member_id, MISSING, "sheet/ledger", "In the ledger but not in the spreadsheet",
                      sheet=None, ledger=led.tier_code)
    return found


def _processor_differences(ledger: dict[str, LedgerRow], processor_rows: Iterable[ProcessorRow]) -> list[Discrepancy]:
    found = _Findings()
    by_sub: dict[str, ProcessorRow] = {}
    by_customer: dict[str, list[ProcessorRow]] = {}
    for row in processor_rows:
        by_sub[row.subscription_id] = row
        by_customer.setdefault(row.customer_id, []).append(row)
    matched: set[str] = set()
    for number, led in ledger.items():
        sub = _subscription_of(led, by_sub=by_sub, by_customer=by_customer, matched=matched)
        if sub is None:
            if led.status not in ("cancelled", "pending", "lapsed"):
                found.add(number, led.member_id, MISSING, "ledger/processor",
                          "No processor subscription for this membership",
                          ledger=led.status, processor=led.processor_subscription_id or None)
            continue
        matched.add(sub.subscription_id)
        _compare_subscription(found, number, led, sub)
    for sub_id, sub in by_sub.items():
        if sub_id not in matched and _processor_status(sub) not in ("cancelled",):
            found.add("", None, MISSING, "processor/ledger",
                      f"Processor subscription {sub_id} ({sub.status}) has no membership in the ledger",
                      processor=sub_id, customer=sub.customer_id, ledger=None)
    return found


def _subscription_of(led: LedgerRow, *, by_sub: dict[str, ProcessorRow], by_customer: dict[str, list[ProcessorRow]],
                     matched: set[str]) -> ProcessorRow | None:
    """The membership's subscription: by its id, else the customer's one live subscription that no
    other membership matched yet."""
    sub = by_sub.get(led.processor_subscription_id) if led.processor_subscription_id else None
    if sub is None and led.processor_customer_id:
        live = [r for r in by_customer.get(led.processor_customer_id, [])
                if _processor_status(r) != "cancelled" and r.subscription_id not in matched]
        sub = live[0] if len(live) == 1 else None
    return sub


def _compare_subscription(found: _Findings, number: str, led: LedgerRow, sub: ProcessorRow) -> None:
    """A membership against its subscription: entitled but unpaid, the status, the price billed."""
    p_status = _processor_status(sub)
    unpaid = p_status == "past_due" or sub.latest_invoice_status in UNPAID_INVOICE
    if led.status in ENTITLED and unpaid:
        found.add(number, led.member_id, UNPAID_ENTITLED, "ledger/processor",
                  f"Entitled in the ledger ({led.status}) but unpaid at the processor "
                  f"({sub.status}, last invoice {sub.latest_invoice_status or 'unknown'})",
                  ledger=led.status, processor=sub.status, invoice=sub.latest_invoice_id or None,
                  invoice_status=sub.latest_invoice_status or None)
    elif p_status == "deactivated" and led.status == "cancelled":
        if sub.cancel_at is None:     # Square's: bills nothing now, but a resume at Square bills her again
            found.add(number, led.member_id, STATUS_MISMATCH, "ledger/processor",
                      "Cancelled in the ledger, but Square only deactivated the subscription, not cancelled: "
                      "resumed at Square it would bill her again; cancel it in Square's Dashboard",
                      ledger=led.status, processor=sub.status)
    elif led.status not in COMPATIBLE.get(p_status, {p_status}):
        if p_status == ENDING:
            ends = sub.cancel_at or sub.current_period_end
            when = f" on {ends:%Y-%m-%d}" if ends else " at the period end"
            found.add(number, led.member_id, STATUS_MISMATCH, "ledger/processor",
                      f"Status is {led.status} in the ledger, but the processor ends the subscription{when} "
                      f"({sub.status}, cancelled at the processor)",
                      ledger=led.status, processor=f"{sub.status} (ending)")
        else:
            found.add(number, led.member_id, STATUS_MISMATCH, "ledger/processor",
                      f"Status is {led.status} in the ledger, {sub.status} at the processor",
                      ledger=led.status, processor=sub.status)
    # A subscription that has ended, or will at the period end, bills nothing more.
    difference = _price_difference(led, sub) if p_status not in ("cancelled", ENDING) else None
    if difference is not None:
        message, values = difference
        found.add(number, led.member_id, PRICE_MISMATCH, "ledger/processor", message, **values)


def _record_differences(ledger: dict[str, LedgerRow], record_rows: Iterable[RecordRow]) -> list[Discrepancy]:
    found = _Findings()
    by_member = {row.member_id: row for row in record_rows}
    for number, led in ledger.items():
        rec = by_member.get(led.member_id)
        if rec is None:
            continue            # not read for this member (e.g. not linked to a patient)
        if not rec.found or (rec.tier is None and led.status != "cancelled"):
            found.add(number, led.member_id, MISSING, "ledger/record", "No membership on the chart in the record",
                      ledger=led.tier_code, record=None)
            continue
        if rec.tier is not None and _norm(rec.tier) not in (_norm(led.tier_code), _norm(led.tier_name)):
            found.add(number, led.member_id, TIER_MISMATCH, "ledger/record",
                      f"Tier is {led.tier_code} in the ledger, {rec.tier} in the record",
                      ledger=led.tier_code, record=rec.tier)
        if rec.status and led.status not in COMPATIBLE.get(rec.status, {rec.status}):
            found.add(number, led.member_id, STATUS_MISMATCH, "ledger/record",
                      f"Status is {led.status} in the ledger, {rec.status} in the record",
                      ledger=led.status, record=rec.status)
        if rec.flag_expected is not None and bool(rec.flag_expected) != bool(rec.flags):
            found.add(number, led.member_id, STATUS_MISMATCH, "ledger/record flag",
                      (f"The ledger raises the chart flag '{rec.flag_expected}' but the record shows none"
                       if rec.flag_expected else f"The record shows a chart flag ({', '.join(rec.flags)}) the ledger "
                                                 f"does not raise"),
                      ledger=rec.flag_expected or None, record=list(rec.flags))
    return found
