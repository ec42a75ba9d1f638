"""Reading Stripe for reconciliation: every subscription (all statuses), paged, with its price and
its latest invoice. Read only: nothing here writes to Stripe."""

from __future__ import annotations

from typing import Iterator

from billing.reconciliation.compare import LedgerRow, ProcessorRow
from billing.models import SheetRow
from memberships.models import Practice

from .stripe import as_dict, item_and_price, make_client, translate_error
from .stripe_events import id_of, moment_of
from .sync import practice_ref


def subscription_row(sub: dict) -> ProcessorRow:
    """A Stripe subscription (current API shape: period on the item, `price`; or the older one:
    period on the subscription, `plan`) → our snapshot row: price, currency and interval, and
    whether Stripe will end it (`cancel_at_period_end`, `cancel_at`)."""
    items = (sub.get("items") or {}).get("data") or []
    item = items[0] if items else {}
    _, price = item_and_price(sub)
    amount = price.get("unit_amount", price.get("amount"))
    quantity = int(item.get("quantity") or sub.get("quantity") or 1)
    invoice = sub.get("latest_invoice")
    recurring = price.get("recurring") or {}          # a Price; a Plan has interval at its top level
    return ProcessorRow(
        subscription_id=str(sub.get("id") or ""),
        customer_id=id_of(sub.get("customer")),
        status=str(sub.get("status") or ""),
        price_cents=int(amount) * quantity if amount is not None else None,
        currency=str(price.get("currency") or "usd"),
        price_ref=id_of(price),
        current_period_start=moment_of(item.get("current_period_start") or sub.get("current_period_start")),
        current_period_end=moment_of(item.get("current_period_end") or sub.get("current_period_end")),
        latest_invoice_id=id_of(invoice),
        latest_invoice_status=str(invoice.get("status") or "") if isinstance(invoice, dict) else "",
        collection_paused=bool(sub.get("pause_collection")),
        membership_ref=str((sub.get("metadata") or {}).get("membership_ref") or ""),
        interval=str(recurring.get("interval") or price.get("interval") or ""),
        interval_count=int(recurring.get("interval_count") or price.get("interval_count") or 1),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        cancel_at=moment_of(sub.get("cancel_at")),
    )


def list_subscriptions(*, client=None, page_size: int = 100) -> Iterator[dict]:
    """All subscriptions of the account, any status, auto-paged (`starting_after`), latest invoice
    expanded (the price comes embedded in the item)."""
    client = client or make_client()
    try:
        page = client.v1.subscriptions.list({"limit": page_size, "status": "all", "expand": ["data.latest_invoice"]})
        for sub in page.auto_paging_iter():
            yield as_dict(sub)
    except Exception as exc:
        raise translate_error(exc) from exc


def processor_source(*, practice: Practice, ledger: list[LedgerRow], client=None) -> list[ProcessorRow]:
    """This practice's subscriptions: those we created carry its `practice_ref`; ones that predate
    us are recognised by the subscription or customer ids the ledger and the spreadsheet hold (or
    taken whole when the account serves a single practice)."""
    ours = practice_ref(practice.pk)
    known_subs = {row.processor_subscription_id for row in ledger if row.processor_subscription_id}
    known_customers = {row.processor_customer_id for row in ledger if row.processor_customer_id}
    for sub_id, customer in SheetRow.objects.filter(practice=practice).values_list("processor_subscription_id",
                                                                                   "processor_customer_id"):
        known_subs.add(sub_id)
        known_customers.add(customer)
    single = Practice.objects.count() == 1
    rows = []
    for sub in list_subscriptions(client=client):
        tagged = (sub.get("metadata") or {}).get("practice_ref")
        row = subscription_row(sub)
        if tagged == ours or (not tagged and (single or row.subscription_id in known_subs
                                              or row.customer_id in known_customers)):
            rows.append(row)
    return rows
