"""Reading Square for reconciliation, as `stripe_read` reads Stripe: the location's subscriptions
(SearchSubscriptions, every status, paged with its cursor), each with what it bills — the plan
variation's price (or the subscription's price override), currency and cadence — whether Square ends
or pauses it, and, for a membership the ledger holds entitled, the status of its latest invoice (a
failed charge leaves a Square subscription ACTIVE: the invoice is what says it is unpaid). Read
only: nothing here writes to Square. The rows speak the words `billing.reconciliation.compare` reads
(Stripe's), so a Square practice's discrepancies read like a Stripe practice's.

| Square                                  | row                                                        |
|-----------------------------------------|------------------------------------------------------------|
| status ACTIVE / PENDING / PAUSED        | active / pending / paused (paused: `collection_paused`)     |
| ACTIVE with a PAUSE action pending      | paused (Square pauses at the paid cycle's end)             |
| replaced by a tier change "now"         | the ending one left out, its PENDING successor active      |
| status CANCELED / COMPLETED             | canceled (ended)                                           |
| status DEACTIVATED                      | deactivated (not billing until resumed at Square: no end)  |
| ACTIVE with a `canceled_date`           | active, ending then (`cancel_at`, `cancel_at_period_end`)   |
| plan variation cadence MONTHLY, ANNUAL… | interval month / year (QUARTERLY: 3 months…)               |
| invoice UNPAID, PARTIALLY_PAID          | latest invoice open (still owed; a failed charge included) |
| invoice FAILED                          | open: Square cancelled it for suspicious activity (its       |
|                                         | InvoiceStatus), so the cycle is unpaid and a person must act |
| invoice CANCELED                        | latest invoice void (nothing owed)                         |
"""

from __future__ import annotations

from typing import Iterator

from billing.models import SheetRow
from billing.reconciliation.compare import ENTITLED, LedgerRow, ProcessorRow
from memberships.models import Practice

from .base import ProcessorRejected
from .square import SquareProcessor
from .square_events import PROCESSOR, day_start

STATUS = {"ACTIVE": "active", "PENDING": "pending", "PAUSED": "paused", "CANCELED": "canceled",
          "DEACTIVATED": "deactivated", "COMPLETED": "canceled"}
INVOICE_STATUS = {"UNPAID": "open", "PARTIALLY_PAID": "open", "FAILED": "open", "PAID": "paid",
                  "PARTIALLY_REFUNDED": "paid", "REFUNDED": "paid", "CANCELED": "void", "DRAFT": "draft",
                  "SCHEDULED": "draft", "PAYMENT_PENDING": "draft"}
# Square's `SubscriptionCadence` → (interval, count), in the words of a Stripe price's `recurring`.
CADENCE = {"DAILY": ("day", 1), "WEEKLY": ("week", 1), "EVERY_TWO_WEEKS": ("week", 2),
           "THIRTY_DAYS": ("day", 30), "SIXTY_DAYS": ("day", 60), "NINETY_DAYS": ("day", 90),
           "MONTHLY": ("month", 1), "EVERY_TWO_MONTHS": ("month", 2), "QUARTERLY": ("month", 3),
           "EVERY_FOUR_MONTHS": ("month", 4), "EVERY_SIX_MONTHS": ("month", 6), "ANNUAL": ("year", 1),
           "EVERY_TWO_YEARS": ("year", 2)}


def list_subscriptions(processor: SquareProcessor, *, page_size: int = 100) -> Iterator[dict]:
    """Every subscription of the processor's location, any status, with its scheduled actions."""
    cursor = None
    while True:
        params = {"query": {"filter": {"location_ids": [processor.location_id]}}, "limit": page_size,
                  "include": ["actions"]}
        if cursor:
            params["cursor"] = cursor
        page = processor._call(processor.client.subscriptions.search, **params)
        yield from page.get("subscriptions") or []
        cursor = page.get("cursor")
        if not cursor:
            return


def plan_terms(processor: SquareProcessor, variation_id: str, cache: dict) -> tuple[int | None, str, str, int]:
    """(amount, currency, interval, count) the plan variation bills in its ongoing (last) phase; read
    once per variation and run. A variation Square no longer has bills nothing we can tell: no amount
    (the price is not compared; the status still is)."""
    if variation_id not in cache:
        try:
            obj = processor._call(processor.client.catalog.object.get, object_id=variation_id)["object"]
        except ProcessorRejected:
            cache[variation_id] = (None, "", "", 1)
            return cache[variation_id]
        phases = (obj.get("subscription_plan_variation_data") or {}).get("phases") or [{}]
        phase = max(phases, key=lambda p: p.get("ordinal") or 0)
        money = (phase.get("pricing") or {}).get("price_money") or phase.get("recurring_price_money") or {}
        interval, count = CADENCE.get(str(phase.get("cadence") or ""), ("", 1))
        cache[variation_id] = (money.get("amount"), str(money.get("currency") or "USD").lower(), interval, count)
    return cache[variation_id]


def subscription_row(sub: dict, *, terms: tuple[int | None, str, str, int], invoice_status: str = "") -> ProcessorRow:
    amount, currency, interval, count = terms
    override = sub.get("price_override_money") or {}
    if override.get("amount") is not None:
        amount, currency = override["amount"], str(override.get("currency") or currency).lower()
    status = STATUS.get(str(sub.get("status") or ""), str(sub.get("status") or "").lower())
    if status == "active" and any(a.get("type") == "PAUSE" for a in sub.get("actions") or []):
        status = "paused"        # paused by the ledger now, by Square at the paid cycle's end: in step
    ends = day_start(sub.get("canceled_date"), sub.get("timezone")) if status != "canceled" else None
    invoices = sub.get("invoice_ids") or []
    return ProcessorRow(
        subscription_id=str(sub.get("id") or ""), customer_id=str(sub.get("customer_id") or ""), status=status,
        price_cents=int(amount) if amount is not None else None, currency=currency,
        price_ref=next_plan(sub), current_period_start=None,
        current_period_end=day_start(sub.get("charged_through_date"), sub.get("timezone")),
        latest_invoice_id=str(invoices[0]) if invoices else "", latest_invoice_status=invoice_status,
        collection_paused=status == "paused", membership_ref="", interval=interval, interval_count=count,
        cancel_at_period_end=ends is not None, cancel_at=ends)


def _invoice_status(invoice: dict) -> str:
    return INVOICE_STATUS.get(str(invoice.get("status") or ""), str(invoice.get("status") or "").lower())


def latest_invoice_statuses(processor: SquareProcessor, invoice_ids: set[str], *,
                            page_size: int = 200) -> dict[str, str]:
    """The status of each invoice of `invoice_ids` (each an entitled subscription's latest), read in
    pages of the location's invoices, newest first (SearchInvoices: one location, no filter by
    subscription or by several customers, 200 a page at most) rather than one GetInvoice per member.
    Paging stops when every invoice is found, or when fewer are missing than pages were read (a
    membership whose latest invoice is old, a yearly one): those few are read one by one."""
    statuses: dict[str, str] = {}
    cursor, pages = None, 0
    while invoice_ids - statuses.keys() and len(invoice_ids - statuses.keys()) > pages:
        params = {"query": {"filter": {"location_ids": [processor.location_id]},
                            "sort": {"field": "INVOICE_SORT_DATE", "order": "DESC"}}, "limit": page_size}
        if cursor:
            params["cursor"] = cursor
        page = processor._call(processor.client.invoices.search, **params)
        pages += 1
        for invoice in page.get("invoices") or []:
            if invoice.get("id") in invoice_ids:
                statuses[str(invoice["id"])] = _invoice_status(invoice)
        cursor = page.get("cursor")
        if not cursor:
            break
    for invoice_id in sorted(invoice_ids - statuses.keys()):
        statuses[invoice_id] = _invoice_status(processor._call(processor.client.invoices.get,
                                                               invoice_id=invoice_id)["invoice"])
    return statuses


def _latest_invoice(sub: dict) -> str:
    invoices = sub.get("invoice_ids") or []             # newest first (Square's order)
    return str(invoices[0]) if invoices else ""


def processor_source(*, practice: Practice, ledger: list[LedgerRow], processor: SquareProcessor | None = None,
                     page_size: int = 100) -> list[ProcessorRow]:
    """This practice's Square subscriptions. Square keeps no metadata of ours on a subscription: it is
    the practice's when the ledger or the spreadsheet names it or its customer, or when the location
    serves a single Square practice. The latest invoice is read only for the subscriptions of
    memberships the ledger holds entitled (the one comparison it decides), in pages of the location's
invoices (`latest_invoice_statuses`), not one read per member."""
    processor = processor or SquareProcessor.from_settings()
    known_subs = {row.processor_subscription_id for row in ledger if row.processor_subscription_id}
    known_customers = {row.processor_customer_id for row in ledger if row.processor_customer_id}
    entitled = {row.processor_subscription_id for row in ledger if row.status in ENTITLED}
    for sub_id, customer in SheetRow.objects.filter(practice=practice).values_list("processor_subscription_id",
                                                                                   "processor_customer_id"):
        known_subs.add(sub_id)
        known_customers.add(customer)
    single = Practice.objects.filter(processor=PROCESSOR).count() == 1
    subs = list(list_subscriptions(processor, page_size=page_size))
    replaced, successors = replacements(subs)
    terms: dict = {}
    ours = []
    for sub in subs:
        sub_id, customer = str(sub.get("id") or ""), str(sub.get("customer_id") or "")
        if sub_id in replaced or not (single or sub_id in known_subs or customer in known_customers):
            continue
        ours.append(dict(sub, status="ACTIVE") if sub_id in successors else sub)
    wanted = {_latest_invoice(sub) for sub in ours if str(sub.get("id") or "") in entitled} - {""}
    statuses = latest_invoice_statuses(processor, wanted) if wanted else {}
    return [subscription_row(sub, terms=plan_terms(processor, next_plan(sub), terms),
                             invoice_status=statuses.get(_latest_invoice(sub), "")
                             if str(sub.get("id") or "") in entitled else "")
            for sub in ours]


def replacements(subs: list[dict]) -> tuple[set[str], set[str]]:
    """A tier change "now" at Square (`square_tier_change`) ends the subscription when its paid cycle
    ends and starts one on the new plan that day (PENDING until then): the ending one is left out (its
    successor carries the membership) and the successor reads as active — the member's billing goes
    on without a gap. Returns (ids replaced, ids of their successors)."""
    ending = {(s.get("customer_id"), s.get("canceled_date")): s.get("id") for s in subs
              if s.get("status") in ("ACTIVE", "PAUSED") and s.get("canceled_date")}
    replaced, successors = set(), set()
    for sub in subs:
        old = ending.get((sub.get("customer_id"), sub.get("start_date")))
        if old and old != sub.get("id") and sub.get("status") in ("PENDING", "ACTIVE") and not sub.get("canceled_date"):
            replaced.add(str(old))
            if sub.get("status") == "PENDING":
                successors.add(str(sub.get("id")))
    return replaced, successors


def next_plan(sub: dict) -> str:
    """The plan variation the next invoice bills: a pending plan swap's (Square swaps at the cycle's
    end, and the ledger expects a scheduled tier's price from then on), else the current one."""
    swap = next((a for a in sub.get("actions") or [] if a.get("type") == "SWAP_PLAN"), None)
    return str((swap or {}).get("new_plan_variation_id") or sub.get("plan_variation_id") or "")
