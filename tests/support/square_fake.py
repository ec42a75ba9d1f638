"""A small stateful fake of Square's API for the tests, served on a local port (`SquareFake.start()`),
driven by the real SDK (`Square(token=…, base_url=fake.base_url)`).

It keeps customers, cards, catalog objects (subscription plans and plan variations), subscriptions
(with their scheduled actions), invoices and payments; answers the endpoints the adapter calls; and
checks EVERY body it returns — responses and the webhooks it signs — strictly against the SDK's own
models (`tests.support.square_models.check`): a field the SDK does not declare, an enum value outside
its lists, a wrong type fails the test at once (`fake.errors` keeps them too).

Square's behaviour it imitates (VENDORS.md "Square"): idempotency keys replay the first answer and a
key reused with another body is refused (IDEMPOTENCY_KEY_REUSED); a plan swap, a pause and a
cancellation are actions at the end of the paid cycle (`charged_through_date`), one pending swap at a
time; a failed scheduled charge leaves the subscription ACTIVE and its invoice UNPAID. Faults:
`fail_next(status, code)` answers the next requests with an error. Webhooks are signed as Square
signs them: base64(HMAC-SHA256(signature key, notification URL + raw body)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from datetime import date, datetime, timezone as dt_timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from square.types.cancel_subscription_response import CancelSubscriptionResponse
from square.types.create_card_response import CreateCardResponse
from square.types.create_customer_response import CreateCustomerResponse
from square.types.create_subscription_response import CreateSubscriptionResponse
from square.types.delete_subscription_action_response import DeleteSubscriptionActionResponse
from square.types.get_catalog_object_response import GetCatalogObjectResponse
from square.types.get_customer_response import GetCustomerResponse
from square.types.get_invoice_response import GetInvoiceResponse
from square.types.get_subscription_response import GetSubscriptionResponse
from square.types.list_cards_response import ListCardsResponse
from square.types.invoice_canceled_event import InvoiceCanceledEvent
from square.types.invoice_payment_made_event import InvoicePaymentMadeEvent
from square.types.invoice_scheduled_charge_failed_event import InvoiceScheduledChargeFailedEvent
from square.types.invoice_updated_event import InvoiceUpdatedEvent
from square.types.pause_subscription_response import PauseSubscriptionResponse
from square.types.resume_subscription_response import ResumeSubscriptionResponse
from square.types.search_invoices_response import SearchInvoicesResponse
from square.types.search_subscriptions_response import SearchSubscriptionsResponse
from square.types.subscription_updated_event import SubscriptionUpdatedEvent
from square.types.swap_plan_response import SwapPlanResponse
from square.types.upsert_catalog_object_response import UpsertCatalogObjectResponse

from .square_models import ShapeError, check

EVENT_MODELS = {"invoice.payment_made": InvoicePaymentMadeEvent, "invoice.canceled": InvoiceCanceledEvent,
                "invoice.scheduled_charge_failed": InvoiceScheduledChargeFailedEvent,
                "invoice.updated": InvoiceUpdatedEvent,
                "subscription.updated": SubscriptionUpdatedEvent}


def sign(*, body: bytes, signature_key: str, notification_url: str) -> str:
    digest = hmac.new(signature_key.encode(), notification_url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def add_month(day: date) -> date:
    month = day.month % 12 + 1
    year = day.year + (day.month == 12)
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class SquareFake:
    def __init__(self, *, signature_key: str, notification_url: str, location_id: str = "L_FAKE",
                 merchant_id: str = "MLFAKE", currency: str = "USD"):
        self.signature_key, self.notification_url = signature_key, notification_url
        self.location_id, self.merchant_id, self.currency = location_id, merchant_id, currency
        # the location's time zone: Square sets it on every subscription and invoice, whose dates
        # (start, charged through, cancelled, due) are calendar days there
        self.timezone = "UTC"
        self.cancels_deactivated = False     # whether CancelSubscription takes a DEACTIVATED subscription
        self.customers, self.cards, self.catalog = {}, {}, {}
        self.subscriptions, self.invoices, self.payments = {}, {}, {}
        self.requests: list[tuple[str, str, dict]] = []
        self.errors: list[str] = []
        self.outbox: list[tuple[bytes, dict]] = []     # signed webhooks not delivered yet
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=dt_timezone.utc)
        self._faults: list[tuple[int, str, str]] = []
        self._lost: list[tuple[str, str]] = []
        self._slow: dict[tuple[str, str], float] = {}
        self._idempotent: dict[str, tuple[str, int, dict]] = {}
        self._ids = itertools.count(1)
        self._actions: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        self._server = None

    # --- the server ------------------------------------------------------------------------------
    def start(self) -> "SquareFake":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                path, _, query = self.path.partition("?")
                body = json.loads(self.rfile.read(length) or b"{}") if length else dict(parse_qsl(query))
                status, payload = fake.handle(self.command, path, body)
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, status: int, code: str = "RATE_LIMITED", category: str = "RATE_LIMIT_ERROR",
                  times: int = 1) -> None:
        self._faults.extend([(status, category, code)] * times)

    def slow_down(self, method: str, path: str, seconds: float) -> None:
        """Square takes `seconds` to answer every `method path` request (two workers' calls overlap)."""
        self._slow[(method, path)] = seconds

    def lose_answer(self, method: str, path: str) -> None:
        """The next `method path` request is carried out, but its answer is lost: the caller sees a
        500, as after a timeout, while Square has done it."""
        self._lost.append((method, path))

    def calls(self, method: str, prefix: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.startswith(prefix))

    # --- routing ---------------------------------------------------------------------------------
    _ROUTES = [
        ("POST", r"/v2/customers", "_create_customer", CreateCustomerResponse),
        ("GET", r"/v2/customers/(?P<id>[^/]+)", "_get_customer", GetCustomerResponse),
        ("POST", r"/v2/cards", "_create_card", CreateCardResponse),
        ("GET", r"/v2/cards", "_list_cards", ListCardsResponse),
        ("POST", r"/v2/catalog/object", "_upsert_catalog", UpsertCatalogObjectResponse),
        ("GET", r"/v2/catalog/object/(?P<id>[^/]+)", "_get_catalog", GetCatalogObjectResponse),
        ("POST", r"/v2/subscriptions", "_create_subscription", CreateSubscriptionResponse),
        ("POST", r"/v2/subscriptions/search", "_search_subscriptions", SearchSubscriptionsResponse),
        ("GET", r"/v2/subscriptions/(?P<id>[^/]+)", "_get_subscription", GetSubscriptionResponse),
        ("POST", r"/v2/subscriptions/(?P<id>[^/]+)/pause", "_pause", PauseSubscriptionResponse),
        ("POST", r"/v2/subscriptions/(?P<id>[^/]+)/resume", "_resume", ResumeSubscriptionResponse),
        ("POST", r"/v2/subscriptions/(?P<id>[^/]+)/cancel", "_cancel", CancelSubscriptionResponse),
        ("POST", r"/v2/subscriptions/(?P<id>[^/]+)/swap-plan", "_swap", SwapPlanResponse),
        ("DELETE", r"/v2/subscriptions/(?P<id>[^/]+)/actions/(?P<action>[^/]+)", "_delete_action",
         DeleteSubscriptionActionResponse),
        ("POST", r"/v2/invoices/search", "_search_invoices", SearchInvoicesResponse),
        ("GET", r"/v2/invoices/(?P<id>[^/]+)", "_get_invoice", GetInvoiceResponse),
    ]

    def handle(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if (method, path) in self._slow:
            time.sleep(self._slow[(method, path)])
        with self._lock:
            self.requests.append((method, path, body))
            if self._faults:
                status, category, code = self._faults.pop(0)
                return status, {"errors": [{"category": category, "code": code, "detail": "injected fault"}]}
            for verb, pattern, name, model in self._ROUTES:
                match = re.fullmatch(pattern, path)
                if verb == method and match:
                    answer = self._answer(name, model, body, match.groupdict())
                    if (method, path) in self._lost:
                        self._lost.remove((method, path))
                        return 500, {"errors": [_error("INTERNAL_SERVER_ERROR", "answer lost")]}
                    return answer
            return 404, {"errors": [_error("NOT_FOUND", f"no route {method} {path}")]}

    # Square's longest idempotency key per endpoint, where its reference gives one (Square's OpenAPI
    # specification, square/connect-api-specification api.json, each request's `idempotency_key`):
    # CreateCard "Max: 45 characters"; UpsertCatalogObject maxLength 128; CreatePaymentLink maxLength 192
    # (CreatePayment 45, CreateInvoice 128: not called). CreateCustomer and CreateSubscription state none.
    _KEY_LIMITS = {"_create_card": 45, "_upsert_catalog": 128, "_create_payment_link": 192}

    def _answer(self, name, model, body, params) -> tuple[int, dict]:
        key = body.get("idempotency_key")
        if key and len(key) > self._KEY_LIMITS.get(name, len(key)):
            return 400, {"errors": [dict(_error("VALUE_TOO_LONG", f"idempotency_key is longer than "
                                                f"{self._KEY_LIMITS[name]} characters"), field="idempotency_key")]}
        if key:
            seen = self._idempotent.get(key)
            if seen is not None:
                if seen[0] != json.dumps(body, sort_keys=True):
                    return 400, {"errors": [_error("IDEMPOTENCY_KEY_REUSED", "key reused with another body")]}
                return seen[1], seen[2]
        try:
            status, payload = 200, getattr(self, name)(body, **params)
        except _NotFound as exc:
            status, payload = 404, {"errors": [_error("NOT_FOUND", str(exc))]}
        except _Refused as exc:
            status, payload = 400, {"errors": [_error(exc.code, str(exc))]}
        self._check(model, payload)
        if key and status == 200:
            self._idempotent[key] = (json.dumps(body, sort_keys=True), status, payload)
        return status, payload

    def _check(self, model, payload) -> None:
        try:
            check(model, payload)
        except (ShapeError, ValueError) as exc:
            self.errors.append(str(exc))
            raise

    def today(self, zone: str = "") -> date:
        """The day it is where the location is (Square's dates are days of its time zone)."""
        return self.now.astimezone(ZoneInfo(zone or self.timezone)).date()

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}{uuid.uuid4().hex[:6].upper()}"

    # --- customers, cards, catalog -----------------------------------------------------------------
    def _create_customer(self, body):
        # Square: "You must provide at least one of the following values in your request to this endpoint:
        # given_name, family_name, company_name, email_address, phone_number" (CreateCustomer reference,
        # the SDK's `customers.create` docstring)
        if not any(body.get(f) for f in ("given_name", "family_name", "company_name", "email_address",
                                         "phone_number")):
            raise _Refused("MISSING_REQUIRED_PARAMETER", "a name, company, email address or phone number is required")
        customer = {"id": self._new_id("CUST"), "created_at": _stamp(self.now), "updated_at": _stamp(self.now),
                    "creation_source": "THIRD_PARTY", "version": 0}
        for field in ("given_name", "family_name", "email_address", "reference_id", "note"):
            if body.get(field):
                customer[field] = body[field]
        self.customers[customer["id"]] = customer
        return {"customer": customer}

    def _get_customer(self, body, id):
        return {"customer": self._find(self.customers, id)}

    def _create_card(self, body):
        wanted = body.get("card") or {}
        customer = self._find(self.customers, wanted.get("customer_id", ""))
        card = {"id": self._new_id("ccof:"), "card_brand": "VISA", "last_4": "1111", "exp_month": 12,
                "exp_year": 2030, "customer_id": customer["id"], "merchant_id": self.merchant_id,
                "enabled": True, "card_type": "CREDIT", "prepaid_type": "NOT_PREPAID", "bin": "411111",
                "created_at": _stamp(self.now), "version": 1}
        if wanted.get("reference_id"):
            card["reference_id"] = wanted["reference_id"]
        self.cards[card["id"]] = card
        return {"card": card}

    def _list_cards(self, body):
        found = [c for c in self.cards.values() if c["enabled"]
                 and c["customer_id"] == body.get("customer_id", c["customer_id"])]
        return {"cards": found} if found else {}

    def _upsert_catalog(self, body):
        obj = json.loads(json.dumps(body["object"]))
        mappings = []
        if obj["id"].startswith("#"):
            new_id = self._new_id("PLAN" if obj["type"] == "SUBSCRIPTION_PLAN" else "VAR")
            mappings.append({"client_object_id": obj["id"], "object_id": new_id})
            obj["id"] = new_id
        elif obj["id"] not in self.catalog:
            raise _NotFound(f"catalog object {obj['id']}")
        variation = obj.get("subscription_plan_variation_data")
        if variation is not None:
            self._find(self.catalog, variation.get("subscription_plan_id", ""))
        obj.update(version=(self.catalog.get(obj["id"], {}).get("version") or 0) + 1,
                   updated_at=_stamp(self.now), is_deleted=False, present_at_all_locations=True)
        self.catalog[obj["id"]] = obj
        if variation is not None:
            plan = self.catalog[variation["subscription_plan_id"]]
            plan.setdefault("subscription_plan_data", {}).setdefault("subscription_plan_variations", []).append(obj)
        answer = {"catalog_object": obj}
        if mappings:
            answer["id_mappings"] = mappings
        return answer

    def _get_catalog(self, body, id):
        return {"object": self._find(self.catalog, id)}

    def _find(self, table: dict, key: str):
        if key not in table:
            raise _NotFound(f"{key or '?'} not found")
        return table[key]

    # --- subscriptions -------------------------------------------------------------------------------
    def _create_subscription(self, body):
        variation = self._find(self.catalog, body.get("plan_variation_id", ""))
        customer = self._find(self.customers, body["customer_id"])
        if body.get("location_id") != self.location_id:
            raise _Refused("NOT_FOUND", f"location {body.get('location_id')}")
        zone = body.get("timezone") or self.timezone
        today = self.today(zone)
        sub = {"id": self._new_id("SUB"), "location_id": self.location_id, "plan_variation_id": variation["id"],
               "customer_id": customer["id"], "start_date": today.isoformat(), "status": "ACTIVE",
               "invoice_ids": [], "version": 1, "created_at": _stamp(self.now),
               "timezone": zone,
               "source": {"name": "medspa-ledger"}}
        if body.get("card_id"):
            self._find(self.cards, body["card_id"])
            sub["card_id"] = body["card_id"]
        self.subscriptions[sub["id"]] = sub
        self._actions[sub["id"]] = []
        if sub.get("card_id"):
            self.bill(sub["id"])                    # Square charges the first cycle at once
        return {"subscription": self._public(sub)}

    def _public(self, sub):
        actions = self._actions.get(sub["id"]) or []
        return dict(sub, actions=[dict(a) for a in actions]) if actions else dict(sub)

    def _get_subscription(self, body, id):
        """Square lists a subscription's scheduled actions only when asked (`include=actions`)."""
        sub = self._find(self.subscriptions, id)
        return {"subscription": self._public(sub) if body.get("include") == "actions" else dict(sub)}

    def _search_subscriptions(self, body):
        """Paged as Square pages: `limit` per page, an opaque `cursor` to the next (none on the last)."""
        wanted = (body.get("query") or {}).get("filter") or {}
        with_actions = "actions" in (body.get("include") or [])
        found = [self._public(s) if with_actions else dict(s) for s in self.subscriptions.values()
                 if s["customer_id"] in (wanted.get("customer_ids") or [s["customer_id"]])
                 and s["location_id"] in (wanted.get("location_ids") or [s["location_id"]])]
        start = int(body.get("cursor") or 0)
        end = start + int(body.get("limit") or 200)
        page = {"subscriptions": found[start:end]} if found[start:end] else {}
        if end < len(found):
            page["cursor"] = str(end)
        return page

    def _cycle_end(self, sub) -> str:
        return sub.get("charged_through_date") or sub["start_date"]

    def _schedule(self, sub, kind: str, **extra):
        if kind == "SWAP_PLAN" and any(a["type"] == "SWAP_PLAN" for a in self._actions[sub["id"]]):
            raise _Refused("BAD_REQUEST", "a plan swap is already pending")
        action = {"id": self._new_id("ACT"), "type": kind, "effective_date": extra.pop("when", None)
                  or self._cycle_end(sub), **extra}
        self._actions[sub["id"]].append(action)
        return action

    def _pause(self, body, id):
        """Square's rule (PauseSubscription's `resume_effective_date`, the SDK's docstring and Square's
        reference): a resume date "must be at least one billing cycle ahead of pause_effective_date",
        which is the paid cycle's end when not given."""
        sub = self._find(self.subscriptions, id)
        pause_on = body.get("pause_effective_date") or self._cycle_end(sub)
        if body.get("resume_effective_date") and body["resume_effective_date"] < self.cycle_after(
                sub["plan_variation_id"], date.fromisoformat(pause_on)).isoformat():
            raise _Refused("INVALID_PAUSE_LENGTH", "resume_effective_date must be at least one billing cycle "
                                                   "ahead of pause_effective_date")
        action = self._schedule(sub, "PAUSE", when=body.get("pause_effective_date"))
        actions = [action]
        if body.get("resume_effective_date"):
            actions.append(self._schedule(sub, "RESUME", when=body["resume_effective_date"]))
        return {"subscription": self._public(sub), "actions": actions}

    def _resume(self, body, id):
        sub = self._find(self.subscriptions, id)
        if sub["status"] != "PAUSED":
            pending = [a for a in self._actions[id] if a["type"] == "PAUSE"]
            for a in pending:
                self._actions[id].remove(a)
            return {"subscription": self._public(sub), "actions": []}
        when = body.get("resume_effective_date") or self.today(sub["timezone"]).isoformat()
        action = self._schedule(sub, "RESUME", when=when)
        return {"subscription": self._public(sub), "actions": [action]}

    def _cancel(self, body, id):
        """CancelSubscription "schedules a CANCEL action to cancel an active subscription" (the guides:
        "an active or paused subscription"): a DEACTIVATED one is refused unless the test says Square
        takes it (`cancels_deactivated`), its reference saying neither."""
        sub = self._find(self.subscriptions, id)
        if sub["status"] == "CANCELED":
            raise _Refused("BAD_REQUEST", "already canceled")
        if sub["status"] == "DEACTIVATED" and not self.cancels_deactivated:
            raise _Refused("BAD_REQUEST", "a deactivated subscription cannot be canceled")
        action = self._schedule(sub, "CANCEL")
        sub["canceled_date"] = action["effective_date"]
        return {"subscription": self._public(sub), "actions": [action]}

    def _swap(self, body, id):
        """A swap at the end of the current cycle. A subscription that has not started (PENDING, never
        invoiced) has its first cycle still ahead: the swap applies when that cycle ends, so the first
        invoice is at the old plan's price ("The customer remains subscribed to the original plan
        variation until the end of the current billing cycle", Swap Subscription Plan Variations)."""
        sub = self._find(self.subscriptions, id)
        self._find(self.catalog, body.get("new_plan_variation_id", ""))
        when = None
        if sub["status"] == "PENDING" and not sub.get("charged_through_date"):
            when = self.cycle_after(sub["plan_variation_id"], date.fromisoformat(sub["start_date"])).isoformat()
        action = self._schedule(sub, "SWAP_PLAN", when=when, new_plan_variation_id=body["new_plan_variation_id"])
        return {"subscription": self._public(sub), "actions": [action]}

    def _delete_action(self, body, id, action):
        sub = self._find(self.subscriptions, id)
        self._actions[id] = [a for a in self._actions[id] if a["id"] != action]
        return {"subscription": self._public(sub)}

    def _get_invoice(self, body, id):
        return {"invoice": self._find(self.invoices, id)}

    def _search_invoices(self, body):
        """SearchInvoices as Square answers it: exactly one location (and at most one customer), 200 a
        page at most, newest first when sorted DESC (by creation here), an opaque cursor to the next."""
        query = body.get("query") or {}
        wanted = query.get("filter") or {}
        locations, customers = wanted.get("location_ids") or [], wanted.get("customer_ids") or []
        if len(locations) != 1 or len(customers) > 1:
            raise _Refused("BAD_REQUEST", "one location and at most one customer")
        limit = int(body.get("limit") or 100)
        if limit > 200:
            raise _Refused("INVALID_VALUE", "limit is at most 200")
        found = [dict(i) for i in self.invoices.values() if i["location_id"] == locations[0]
                 and i["primary_recipient"]["customer_id"] in (customers or [i["primary_recipient"]["customer_id"]])]
        if ((query.get("sort") or {}).get("order") or "ASC") == "DESC":
            found.reverse()
        start = int(body.get("cursor") or 0)
        page = {"invoices": found[start:start + limit]} if found[start:start + limit] else {}
        if start + limit < len(found):
            page["cursor"] = str(start + limit)
        return page

    from tests.support.square_fake_billing import (  # noqa: E402  (Square's own moves: billing, actions)
        apply_due_actions, bill, cancel_invoice, cycle_after, deliver, emit, fail_invoice, pay_invoice, price_of,
        forget_subscription,
    )


class _NotFound(Exception):
    pass


class _Refused(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code


def _error(code: str, detail: str) -> dict:
    category = "INVALID_REQUEST_ERROR"
    return {"category": category, "code": code, "detail": detail}
