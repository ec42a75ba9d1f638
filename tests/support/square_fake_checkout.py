"""The fake Square (`square_fake.SquareFake`) with what a member's own pages need, each answer checked
against the SDK's models like the rest of the fake:

- `UpdateSubscription` (`PUT /v2/subscriptions/{id}`: a new `card_id`), and `CreateSubscription`
  with a future `start_date` (PENDING until that day's invoice; a plan change made as a new
  subscription starts when the paid month ends);
- the Checkout API's payment links (`POST /v2/online-checkout/payment-links`, `GET`/`DELETE …/{id}`): a
  quick-pay link with `checkout_options.subscription_plan_id` (the plan variation), its order;
- two pages a browser opens, not JSON: a stand-in for Square's Web Payments SDK at
  `/web-sdk/v1/square.js` (`Square.payments(appId, locationId).card()` → `attach(selector)` draws one
  input, `tokenize()` answers `{status: "OK", token: "cnon:card-nonce-ok"}`, Square's sandbox test
  nonce), and a stand-in for the payment link's hosted page at `/checkout/pay/{link id}`, whose "Pay"
  does what Square does when the buyer pays a subscription link: a customer (the email typed),
  the card on file, the subscription charged at once (`invoice.payment_made`), `subscription.created`
  — then sends the buyer to the link's `redirect_url`.

Webhooks stay queued in `outbox` (signed as Square signs them) until the test delivers them."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from square.types.create_payment_link_response import CreatePaymentLinkResponse
from square.types.delete_payment_link_response import DeletePaymentLinkResponse
from square.types.get_order_response import GetOrderResponse
from square.types.get_payment_link_response import GetPaymentLinkResponse
from square.types.get_payment_response import GetPaymentResponse
from square.types.subscription_created_event import SubscriptionCreatedEvent
from square.types.update_subscription_response import UpdateSubscriptionResponse

from . import square_fake
from .square_fake import SquareFake, _NotFound, _Refused, _stamp

square_fake.EVENT_MODELS.setdefault("subscription.created", SubscriptionCreatedEvent)

SDK_PATH = "/web-sdk/v1/square.js"
TEST_NONCE = "cnon:card-nonce-ok"
DECLINED_NONCE = "cnon:card-nonce-declined"

STAND_IN_SDK = """// A stand-in for Square's Web Payments SDK (tests only): the same calls, one plain input.
window.Square = {
  payments: function (applicationId, locationId) {
    return {
      card: async function () {
        return {
          attach: async function (selector) {
            var input = document.createElement("input");
            input.id = "stand-in-card-number";
            input.setAttribute("data-testid", "stand-in-card-number");
            input.setAttribute("aria-label", "Card number");
            document.querySelector(selector).appendChild(input);
          },
          tokenize: async function () { return {status: "OK", token: "%s"}; }
        };
      }
    };
  }
};
""" % TEST_NONCE

PAY_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Square Checkout (stand-in)</title></head>
<body><h1>Square Checkout</h1><p data-testid="square-checkout-amount">{amount} {currency} every month</p>
<form method="post"><label>Email <input name="email" value="{email}" data-testid="square-checkout-email"></label>
<button type="submit" data-testid="square-checkout-pay">Pay and subscribe</button></form></body></html>"""


class SquareFakeCheckout(SquareFake):
    _ROUTES = SquareFake._ROUTES + [
        ("PUT", r"/v2/subscriptions/(?P<id>[^/]+)", "_update_subscription", UpdateSubscriptionResponse),
        ("POST", r"/v2/online-checkout/payment-links", "_create_payment_link", CreatePaymentLinkResponse),
        ("GET", r"/v2/online-checkout/payment-links/(?P<id>[^/]+)", "_get_payment_link", GetPaymentLinkResponse),
        ("DELETE", r"/v2/online-checkout/payment-links/(?P<id>[^/]+)", "_delete_payment_link",
         DeletePaymentLinkResponse),
        ("GET", r"/v2/orders/(?P<id>[^/]+)", "_get_order", GetOrderResponse),
        ("GET", r"/v2/payments/(?P<id>[^/]+)", "_get_payment", GetPaymentResponse),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.payment_links: dict[str, dict] = {}
        self.orders: dict[str, dict] = {}

    # --- the server: JSON routes of the fake, plus the two pages ------------------------------------
    def start(self) -> "SquareFakeCheckout":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, content_type: str, location: str = ""):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if location:
                    self.send_header("Location", location)
                self.end_headers()
                self.wfile.write(body)

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                path, _, query = self.path.partition("?")
                raw = self.rfile.read(length) if length else b""
                if path == SDK_PATH:
                    return self._send(200, STAND_IN_SDK.encode(), "application/javascript")
                if path.startswith("/checkout/pay/"):
                    link_id = path.rsplit("/", 1)[-1]
                    form = dict(parse_qsl(raw.decode())) if raw else {}
                    status, body, location = fake.pay_page(self.command, link_id, form)
                    return self._send(status, body.encode(), "text/html; charset=utf-8", location)
                body = json.loads(raw or b"{}") if raw else dict(parse_qsl(query))
                status, payload = fake.handle(self.command, path, body)
                self._send(status, json.dumps(payload).encode(), "application/json")

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def sdk_url(self) -> str:
        return self.base_url + SDK_PATH

    # --- cards: Square's sandbox test nonces for a refused card ------------------------------------------
    def handle(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        """`cnon:card-nonce-declined` (Square's sandbox test value) is refused by CreateCard as a
        declined card (a PAYMENT_METHOD_ERROR), as Square's sandbox does."""
        if method == "POST" and path == "/v2/cards" and body.get("source_id") == DECLINED_NONCE:
            with self._lock:
                self.requests.append((method, path, body))
            return 400, {"errors": [{"category": "PAYMENT_METHOD_ERROR", "code": "CARD_DECLINED",
                                     "detail": "Card declined."}]}
        return super().handle(method, path, body)

    # --- subscriptions ------------------------------------------------------------------------------
    def _update_subscription(self, body, id):
        sub = self._find(self.subscriptions, id)
        wanted = body.get("subscription") or {}
        if sub["status"] == "CANCELED":
            raise _Refused("BAD_REQUEST", "subscription is in a state that cannot be updated")
        if "card_id" in wanted:
            self._own_card(wanted["card_id"], sub["customer_id"])
            sub["card_id"] = wanted["card_id"]
        sub["version"] += 1
        return {"subscription": self._public(sub)}

    def _own_card(self, card_id: str, customer_id: str) -> None:
        """Square charges a subscription to a card on file of its own customer (the subscriber's card):
        another customer's card is refused."""
        card = self._find(self.cards, card_id)
        if card["customer_id"] != customer_id:
            raise _Refused("INVALID_VALUE", f"card {card_id} is not a card on file of customer {customer_id}")

    def _create_subscription(self, body):
        if body.get("card_id"):
            self._own_card(body["card_id"], body.get("customer_id", ""))
        start = body.get("start_date")
        if not start or date.fromisoformat(start) <= self.today(body.get("timezone") or ""):
            return super()._create_subscription(body)
        answer = super()._create_subscription(dict(body, card_id=None) if body.get("card_id") else body)
        sub = self.subscriptions[answer["subscription"]["id"]]
        sub.update(status="PENDING", start_date=start)
        if body.get("card_id"):
            self._find(self.cards, body["card_id"])
            sub["card_id"] = body["card_id"]
        return {"subscription": self._public(sub)}

    def bill(self, subscription_id: str, *, fail_code: str | None = None) -> str:
        sub = self.subscriptions[subscription_id]
        if sub["status"] == "PENDING":
            sub["status"] = "ACTIVE"                      # its start date came: Square bills it
        return super().bill(subscription_id, fail_code=fail_code)

    # --- payment links ------------------------------------------------------------------------------
    def _create_payment_link(self, body):
        quick = body.get("quick_pay") or {}
        options = body.get("checkout_options") or {}
        if not quick or not options.get("subscription_plan_id"):
            raise _Refused("INVALID_REQUEST_ERROR", "a quick_pay with checkout_options.subscription_plan_id is expected")
        variation = self._find(self.catalog, options["subscription_plan_id"])
        if quick.get("location_id") != self.location_id:
            raise _Refused("NOT_FOUND", f"location {quick.get('location_id')}")
        if quick["price_money"]["amount"] != self.price_of(variation["id"]):
            raise _Refused("INVALID_VALUE", "price_money must be the plan variation's price")
        link_id = self._new_id("PL")
        order_id = self._new_id("ORD")
        link = {"id": link_id, "version": 1, "order_id": order_id, "checkout_options": dict(options),
                "url": f"{self.base_url}/checkout/pay/{link_id}", "created_at": _stamp(self.now)}
        if body.get("pre_populated_data"):
            link["pre_populated_data"] = dict(body["pre_populated_data"])
        if body.get("description"):
            link["description"] = body["description"]
        self.payment_links[link_id] = dict(link, _paid=False, _name=quick["name"], _money=quick["price_money"])
        order = {"id": order_id, "location_id": self.location_id, "state": "DRAFT", "version": 1,
                 "source": {"name": "medspa-ledger"},
                 "line_items": [{"uid": self._new_id("LI"), "name": quick["name"], "quantity": "1",
                                 "item_type": "ITEM", "base_price_money": dict(quick["price_money"])}],
                 "total_money": dict(quick["price_money"]), "created_at": _stamp(self.now)}
        self.orders[order_id] = order
        return {"payment_link": link, "related_resources": {"orders": [order]}}

    def _get_order(self, body, id):
        return {"order": self._find(self.orders, id)}

    def _get_payment(self, body, id):
        return {"payment": self._find(self.payments, id)}

    def _public_link(self, link_id: str) -> dict:
        return {k: v for k, v in self.payment_links[link_id].items() if not k.startswith("_")}

    def _get_payment_link(self, body, id):
        if id not in self.payment_links:
            raise _NotFound(f"payment link {id}")
        return {"payment_link": self._public_link(id)}

    def _delete_payment_link(self, body, id):
        if id not in self.payment_links:
            raise _NotFound(f"payment link {id}")
        link = self.payment_links.pop(id)
        return {"id": id, "cancelled_order_id": link["order_id"]}

    def pay_page(self, method: str, link_id: str, form: dict) -> tuple[int, str, str]:
        """The hosted page: GET shows the amount; POST pays (once) and redirects to redirect_url."""
        with self._lock:
            link = self.payment_links.get(link_id)
            if link is None:
                return 404, "No such checkout.", ""
            money = link["_money"]
            if method == "GET":
                email = (link.get("pre_populated_data") or {}).get("buyer_email", "")
                return 200, PAY_PAGE.format(amount=f"{money['amount'] / 100:.2f}", currency=money["currency"],
                                            email=email), ""
            if not link["_paid"]:
                self.pay_link(link_id, email=form.get("email", ""))
            return 303, "", link["checkout_options"].get("redirect_url", "")

    def pay_link(self, link_id: str, *, email: str) -> str:
        """What Square does when the buyer pays a subscription link: customer, card on file,
        subscription on the link's plan variation, charged now; `subscription.created` is sent.
        Returns the subscription's id."""
        link = self.payment_links[link_id]
        customer = self._create_customer({"email_address": email} if email else {})["customer"]
        card = self._create_card({"card": {"customer_id": customer["id"]}})["card"]
        answer = super()._create_subscription({"location_id": self.location_id, "customer_id": customer["id"],
                                               "plan_variation_id": link["checkout_options"]["subscription_plan_id"],
                                               "card_id": card["id"]})
        link["_paid"] = True
        sub = self.subscriptions[answer["subscription"]["id"]]
        # the link's order is paid (Square's forum: "when a subscription for a payment link is paid for
        # the order will be updated"; DRAFT → OPEN, quick pay checkout); the buyer is named by the payment
        paid = next(p for p in self.payments.values()
                    if p["order_id"] == self.invoices[sub["invoice_ids"][0]]["order_id"])
        order = self.orders[link["order_id"]]
        order.update(state="OPEN", version=order["version"] + 1, updated_at=_stamp(self.now), tenders=[{
            "id": self._new_id("TND"), "location_id": self.location_id, "created_at": _stamp(self.now),
            "amount_money": dict(link["_money"]), "type": "CARD", "customer_id": customer["id"],
            "payment_id": paid["id"]}])
        self.emit("subscription.created", "subscription", self._public(sub))
        return sub["id"]
