"""What Square does on its own, for `SquareFake` (its methods): bill a cycle (paid, or a failed
scheduled charge that leaves the invoice UNPAID and the subscription ACTIVE), take a later payment of
an open invoice, cancel an open invoice as the seller, apply the scheduled actions whose date has come (pause, resume, cancel, plan swap),
and sign and hand over the webhooks each of these sends."""

from __future__ import annotations

import json
import uuid
from datetime import date

from .square_models import check


def price_of(self, variation_id: str) -> int:
    phase = self.catalog[variation_id]["subscription_plan_variation_data"]["phases"][0]
    money = (phase.get("pricing") or {}).get("price_money") or phase.get("recurring_price_money")
    return int(money["amount"])


# Months per cycle of the cadences the fake bills (Square's `SubscriptionCadence`; the day- and
# week-based ones are not used by the ledger, whose tiers bill monthly or yearly).
MONTHS = {"MONTHLY": 1, "EVERY_TWO_MONTHS": 2, "QUARTERLY": 3, "EVERY_FOUR_MONTHS": 4, "EVERY_SIX_MONTHS": 6,
          "ANNUAL": 12, "EVERY_TWO_YEARS": 24}


def cycle_after(self, variation_id: str, day: date) -> date:
    """The end of the cycle that starts on `day`, by the plan variation's cadence."""
    import calendar

    cadence = self.catalog[variation_id]["subscription_plan_variation_data"]["phases"][0]["cadence"]
    months = day.month - 1 + MONTHS[cadence]
    year, month = day.year + months // 12, months % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def bill(self, subscription_id: str, *, fail_code: str | None = None) -> str:
    """Square invoices the subscription's next cycle (the date it is charged through) and charges the
    card on file: paid → `invoice.payment_made`; declined → `invoice.scheduled_charge_failed`, the
    invoice stays UNPAID (Square emails it) and the subscription stays ACTIVE. Returns the invoice id."""
    from .square_fake import _stamp

    sub = self.subscriptions[subscription_id]
    due = sub.get("charged_through_date") or sub["start_date"]
    self.apply_due_actions(today=date.fromisoformat(due))
    if sub["status"] not in ("ACTIVE", "PENDING"):
        # "As long as the subscription's status is ACTIVE, Square sends invoices" (Subscription Billing
        # and Invoices): a paused or cancelled one is not billed — a test asking for it is wrong
        raise AssertionError(f"Square bills no {sub['status']} subscription ({subscription_id} on {due})")
    amount = self.price_of(sub["plan_variation_id"])
    money = {"amount": amount, "currency": self.currency}
    invoice_id = self._new_id("inv:0-")
    invoice = {
        "id": invoice_id, "version": 1, "location_id": self.location_id, "order_id": self._new_id("ORD"),
        "primary_recipient": {"customer_id": sub["customer_id"]},
        "payment_requests": [{"uid": str(uuid.uuid4()), "request_type": "BALANCE", "due_date": due,
                              "computed_amount_money": money,
                              "total_completed_amount_money": {"amount": 0, "currency": self.currency},
                              "automatic_payment_source": "CARD_ON_FILE", "card_id": sub.get("card_id", "")}],
        "delivery_method": "EMAIL", "invoice_number": f"{len(self.invoices) + 1:06d}",
        "public_url": f"https://squareup.com/pay-invoice/{invoice_id}", "status": "UNPAID",
        "timezone": sub.get("timezone") or self.timezone,
        "created_at": _stamp(self.now), "updated_at": _stamp(self.now), "subscription_id": subscription_id,
        "sale_or_service_date": due, "accepted_payment_methods": {"card": True, "square_gift_card": False,
                                                                  "bank_account": False, "buy_now_pay_later": False,
                                                                  "cash_app_pay": False},
        "store_payment_method_enabled": False,
    }
    self.invoices[invoice_id] = invoice
    sub["invoice_ids"] = [invoice_id] + sub["invoice_ids"]
    payment = _payment(self, invoice, money, failed_code=fail_code)
    # Invoiced is charged through, paid or not (Square's `charged_through_date`: "after the invoice is
    # sent for a given billing period"), so the next bill is the next cycle's.
    sub["charged_through_date"] = self.cycle_after(sub["plan_variation_id"], date.fromisoformat(due)).isoformat()
    if fail_code:
        self.emit("invoice.scheduled_charge_failed", "invoice", invoice)
        return invoice_id
    _mark_paid(self, invoice, payment)
    self.emit("invoice.payment_made", "invoice", invoice)
    return invoice_id


def pay_invoice(self, invoice_id: str, *, amount: int | None = None) -> None:
    """The member pays the open invoice (its payment page, or a charge the seller takes); `amount`
    less than what is still owed is a partial payment: the invoice is PARTIALLY_PAID, and Square
    still sends `invoice.payment_made` (it is sent for each payment completed on an invoice)."""
    invoice = self.invoices[invoice_id]
    request = invoice["payment_requests"][0]
    money = request["computed_amount_money"]
    done = int(request["total_completed_amount_money"]["amount"])
    if amount is not None and done + amount < int(money["amount"]):
        payment = _payment(self, invoice, {"amount": amount, "currency": money["currency"]}, failed_code=None)
        invoice["status"], invoice["version"] = "PARTIALLY_PAID", invoice["version"] + 1
        invoice["updated_at"] = payment["updated_at"]
        request["total_completed_amount_money"] = {"amount": done + amount, "currency": money["currency"]}
        self.emit("invoice.payment_made", "invoice", invoice)
        return
    rest = {"amount": int(money["amount"]) - done, "currency": money["currency"]}
    _mark_paid(self, invoice, _payment(self, invoice, rest, failed_code=None))
    request["total_completed_amount_money"] = dict(money)
    sub = self.subscriptions[invoice["subscription_id"]]
    through = self.cycle_after(sub["plan_variation_id"],
                               date.fromisoformat(invoice["payment_requests"][0]["due_date"])).isoformat()
    if through > (sub.get("charged_through_date") or ""):
        sub["charged_through_date"] = through
    self.emit("invoice.payment_made", "invoice", invoice)


def cancel_invoice(self, invoice_id: str) -> None:
    """The seller cancels the invoice (Square's CancelInvoice, or the Seller Dashboard): only a
    SCHEDULED, UNPAID or PARTIALLY_PAID one; Square sets it CANCELED, stops charging it, leaves the
    subscription ACTIVE and sends `invoice.canceled` (developer.squareup.com/docs/invoices-api/
    cancel-delete-invoices)."""
    from .square_fake import _Refused, _stamp

    invoice = self.invoices[invoice_id]
    if invoice["status"] not in ("SCHEDULED", "UNPAID", "PARTIALLY_PAID"):
        raise _Refused("BAD_REQUEST", f"an invoice in the {invoice['status']} state cannot be canceled")
    invoice["status"], invoice["version"] = "CANCELED", invoice["version"] + 1
    invoice["updated_at"] = _stamp(self.now)
    invoice["payment_requests"][0]["automatic_payment_source"] = "NONE"
    self.emit("invoice.canceled", "invoice", invoice)


def fail_invoice(self, invoice_id: str) -> None:
    """Square cancels an open invoice itself for suspicious activity: status FAILED ("Square canceled
    the invoice due to suspicious activity", InvoiceStatus), no more payment requested; the change is
    reported by `invoice.updated` alone (no `invoice.canceled`: the seller did not cancel it)."""
    from .square_fake import _Refused, _stamp

    invoice = self.invoices[invoice_id]
    if invoice["status"] not in ("SCHEDULED", "UNPAID", "PARTIALLY_PAID"):
        raise _Refused("BAD_REQUEST", f"an invoice in the {invoice['status']} state cannot fail")
    invoice["status"], invoice["version"] = "FAILED", invoice["version"] + 1
    invoice["updated_at"] = _stamp(self.now)
    invoice["payment_requests"][0]["automatic_payment_source"] = "NONE"
    self.emit("invoice.updated", "invoice", invoice)


def _mark_paid(self, invoice: dict, payment: dict) -> None:
    from .square_fake import _stamp

    invoice["status"] = "PAID"
    invoice["version"] += 1
    invoice["updated_at"] = _stamp(self.now)
    invoice["payment_requests"][0]["total_completed_amount_money"] = dict(payment["amount_money"])


def _payment(self, invoice: dict, money: dict, *, failed_code: str | None) -> dict:
    from .square_fake import _stamp

    payment = {"id": self._new_id("PAY"), "created_at": _stamp(self.now), "updated_at": _stamp(self.now),
               "amount_money": dict(money), "total_money": dict(money),
               "status": "FAILED" if failed_code else "COMPLETED", "source_type": "CARD",
               "location_id": self.location_id, "order_id": invoice["order_id"],
               "customer_id": invoice["primary_recipient"]["customer_id"],
               "card_details": {"status": "FAILED" if failed_code else "CAPTURED", "entry_method": "ON_FILE",
                                "card": {"card_brand": "VISA", "last_4": "1111", "exp_month": 12, "exp_year": 2030}}}
    if failed_code:
        payment["card_details"]["errors"] = [{"category": "PAYMENT_METHOD_ERROR", "code": failed_code,
                                              "detail": "The card was declined."}]
    from square.types.payment import Payment

    check(Payment, payment)
    self.payments[payment["id"]] = payment
    return payment


_STATUS_AFTER = {"PAUSE": "PAUSED", "RESUME": "ACTIVE", "CANCEL": "CANCELED"}


def apply_due_actions(self, *, today: date | None = None) -> int:
    """Carry out the scheduled actions whose date has come; each sends `subscription.updated`."""
    today = today or self.today()
    done = 0
    for sub_id, actions in self._actions.items():
        sub = self.subscriptions.get(sub_id)
        for action in sorted(actions, key=lambda a: a["effective_date"]):
            if sub is None or date.fromisoformat(action["effective_date"]) > today:
                continue
            actions.remove(action)
            if action["type"] == "SWAP_PLAN":
                sub["plan_variation_id"] = action["new_plan_variation_id"]
            else:
                if action["type"] == "RESUME" and sub["status"] == "PAUSED":
                    sub["charged_through_date"] = action["effective_date"]    # billing restarts that day
                sub["status"] = _STATUS_AFTER[action["type"]]
            sub["version"] += 1
            self.emit("subscription.updated", "subscription", self._public(sub))
            done += 1
    return done


def forget_subscription(self, subscription_id: str) -> None:
    """Square no longer knows the subscription (deleted by hand at Square)."""
    self.subscriptions.pop(subscription_id, None)
    self._actions.pop(subscription_id, None)


def emit(self, event_type: str, data_type: str, obj: dict) -> bytes:
    """Sign and queue one webhook, shaped and checked as Square's (`EVENT_MODELS`)."""
    from .square_fake import EVENT_MODELS, _stamp, sign

    event = {"merchant_id": self.merchant_id, "type": event_type, "event_id": str(uuid.uuid4()),
             "created_at": _stamp(self.now),
             "data": {"type": data_type, "id": obj["id"], "object": {data_type: json.loads(json.dumps(obj))}}}
    self._check(EVENT_MODELS[event_type], event)
    body = json.dumps(event).encode()
    self.outbox.append((body, {"x-square-hmacsha256-signature": sign(
        body=body, signature_key=self.signature_key, notification_url=self.notification_url)}))
    return body


def deliver(self, client, path: str = "/webhooks/square/") -> list:
    """Post every queued webhook to the app (a Django test client), in order; returns the answers."""
    answers = []
    while self.outbox:
        body, headers = self.outbox.pop(0)
        answers.append(client.post(path, data=body, content_type="application/json", headers=headers))
    return answers
