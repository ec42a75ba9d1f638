"""Tiny launcher for localstripe, run as a *subprocess* by ``LocalStripe``.

Why not ``localstripe.server.start()``:
  * it binds ``::`` (all interfaces, IPv4+IPv6) on a fixed port (8420);
  * ``Store.__setitem__``/``__delitem__`` and the ``save_store_middleware``
    pickle the whole store to ``/tmp/localstripe.pickle`` on every write, and
    ``start()`` reloads that file unless ``--from-scratch`` is given, so state
    leaks between runs and between parallel (xdist) workers.

This launcher:
  * neutralises ``Store.dump_to_disk`` / ``Store.try_load_from_disk`` (no-op by
    default; with ``--pickle-dir DIR`` it pickles to ``DIR/localstripe.pickle``
    instead, which is only useful for post-mortem debugging);
  * binds 127.0.0.1 on port 0 (kernel picks a free port) *before* handing the
    socket to aiohttp, so there is no "find a free port, then race for it" gap;
  * writes the chosen port to ``--port-file`` (atomically) once it is bound;
  * gives invoices the ``billing_reason`` Stripe would (localstripe leaves it null);
  * adds the Checkout Session localstripe lacks (subscription mode only: see
    ``_add_checkout_sessions``) and a stand-in for its hosted payment page;
  * serves ``localstripe.server.app`` with aiohttp's ``run_app`` which exits
    cleanly on SIGTERM/SIGINT.

Usage: python _localstripe_launcher.py --port-file PATH [--port N]
                                       [--pickle-dir DIR] [--access-log]
"""
import argparse
import logging
import os
import pickle
import socket
import sys


def _patch_store(pickle_dir):
    from localstripe import resources

    if pickle_dir is None:
        def dump_to_disk(self):  # in-memory only
            return None
    else:
        path = os.path.join(pickle_dir, 'localstripe.pickle')

        def dump_to_disk(self):
            with open(path, 'wb') as f:
                pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)

    def try_load_from_disk(self):  # never resurrect old state
        return None

    resources.Store.dump_to_disk = dump_to_disk
    resources.Store.try_load_from_disk = try_load_from_disk


def _patch_billing_reason():
    """localstripe leaves every invoice's `billing_reason` null, and never advances a subscription's
    period (each invoice's subscription line bills the first period again), so a renewal cannot be
    told from an extra invoice by its period either. Stripe always says why it made an invoice: say
    it as Stripe would for the invoices localstripe makes — a subscription's first invoice
    `subscription_create`; a later one for the subscription (`POST /v1/invoices` with a
    subscription, which localstripe builds as the subscription's next invoice, dated at the period
    end) `subscription_cycle`; an invoice of no subscription `manual`; a preview `upcoming`."""
    from localstripe import resources

    original = resources.Invoice.__init__

    def __init__(self, *args, **kwargs):
        subscription = kwargs.get('subscription')
        preview = bool(kwargs.get('upcoming') or kwargs.get('simulation'))
        first = False
        if subscription is not None and not preview:
            try:
                first = resources.Subscription._api_retrieve(subscription).latest_invoice is None
            except Exception:  # the original __init__ answers for an unknown subscription
                pass
        original(self, *args, **kwargs)
        if preview:
            self.billing_reason = 'upcoming'
        elif subscription is None:
            self.billing_reason = 'manual'
        else:
            self.billing_reason = 'subscription_create' if first else 'subscription_cycle'

    resources.Invoice.__init__ = __init__


CHECKOUT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pay</title></head>
<body><h1>localstripe Checkout</h1><p data-testid="checkout-amount">{amount} {currency} every {interval}</p>
<p>{email}</p><form method="post"><button type="submit" data-testid="checkout-pay">Subscribe</button></form>
<p><a href="{cancel_url}" data-testid="checkout-back">Back</a></p></body></html>"""


def _add_checkout_sessions():
    """localstripe has no Checkout. This adds the part we use, shaped as Stripe documents the
    `checkout.session` object (the fields of tests/fixtures/stripe/checkout_session_subscription.json,
    recorded from Stripe): `POST /v1/checkout/sessions` (mode `subscription`, one line item naming a
    plan, `customer` or `customer_email`, `client_reference_id`, `metadata`,
    `subscription_data.metadata`, `expires_at`, the two URLs) and `GET /v1/checkout/sessions/{id}`;
    the session's `url` is a hosted page here (under `/js.stripe.com/`, the one prefix localstripe
    serves without an API key) whose button does what paying does at Stripe: the customer (made from
    `customer_email` when none is given) gets a test card as its default, the subscription is
    created with `subscription_data.metadata` (localstripe then invoices and charges it, emitting
    its invoice and subscription events), the session becomes `complete`/`paid` with its
    `customer`, `customer_details` and `subscription`, `checkout.session.completed` is emitted, and
    the browser is sent to `success_url` (`{CHECKOUT_SESSION_ID}` filled in). An expired or
    completed session's page answers 410; a session past `expires_at` reads `expired`."""
    import html
    import time

    from aiohttp import web
    from localstripe import resources, server
    from localstripe.errors import UserError

    class CheckoutSession(resources.StripeObject):
        object = 'checkout.session'
        _id_prefix = 'cs_test_'

        def __init__(self, mode=None, line_items=None, success_url=None, cancel_url=None, customer=None,
                     customer_email=None, client_reference_id=None, metadata=None, subscription_data=None,
                     expires_at=None, payment_method_types=None, **kwargs):
            if kwargs:
                raise UserError(400, 'Unexpected ' + ', '.join(kwargs.keys()))
            expires_at = resources.try_convert_to_int(expires_at)
            try:
                assert mode == 'subscription'
                assert type(success_url) is str and success_url.startswith('http')
                assert type(cancel_url) is str and cancel_url.startswith('http')
                assert type(line_items) is list and len(line_items) == 1
                plan_id = line_items[0].get('price') or line_items[0].get('plan')
                assert type(plan_id) is str
                assert customer is None or (type(customer) is str and customer.startswith('cus_'))
                assert customer is None or customer_email is None
                assert metadata is None or type(metadata) is dict
                assert subscription_data is None or type(subscription_data) is dict
                now = int(time.time())
                assert expires_at is None or (type(expires_at) is int and
                                              now + 1800 - 60 <= expires_at <= now + 86400 + 60)
            except AssertionError:
                raise UserError(400, 'Bad request')
            plan = resources.Plan._api_retrieve(plan_id)          # 404 for an unknown price
            if customer is not None:
                resources.Customer._api_retrieve(customer)
            super().__init__()
            self.mode = mode
            self.status = 'open'
            self.payment_status = 'unpaid'
            self.customer = customer
            self.customer_email = customer_email
            self.customer_details = None
            self.client_reference_id = client_reference_id
            self.metadata = dict(metadata or {})
            self.subscription = None
            self.invoice = None
            self.setup_intent = None
            self.payment_intent = None
            self.success_url = success_url
            self.cancel_url = cancel_url
            self.expires_at = expires_at or self.created + 86400
            self.currency = plan.currency
            self.amount_subtotal = plan.amount
            self.amount_total = plan.amount
            self.payment_method_types = list(payment_method_types or ['card'])
            self.ui_mode = 'hosted'
            self.url = None                     # set by the create route (it knows the host)
            self._plan = plan
            self._subscription_metadata = dict((subscription_data or {}).get('metadata') or {})

        def _refresh(self):
            if self.status == 'open' and int(time.time()) > self.expires_at:
                self.status = 'expired'

        def _complete(self):
            if self.customer is None:
                self.customer = resources.Customer._api_create(email=self.customer_email).id
            pm = resources.PaymentMethod._api_attach('pm_card_visa', customer=self.customer)
            resources.Customer._api_update(self.customer, invoice_settings={'default_payment_method': pm.id})
            sub = resources.Subscription._api_create(
                customer=self.customer, items=[{'plan': self._plan.id, 'quantity': 1}],
                metadata=self._subscription_metadata)
            customer = resources.Customer._api_retrieve(self.customer)
            self.subscription = sub.id
            self.invoice = getattr(sub, 'latest_invoice', None)
            if isinstance(self.invoice, resources.StripeObject):
                self.invoice = self.invoice.id
            self.status, self.payment_status = 'complete', 'paid'
            self.customer_details = {'email': customer.email, 'name': None, 'phone': None, 'address': None,
                                     'tax_exempt': 'none', 'tax_ids': []}
            resources.schedule_webhook(resources.Event('checkout.session.completed', self))

    def session_of(request):
        obj = CheckoutSession._api_retrieve(request.match_info['id'])
        obj._refresh()
        return obj

    async def create(request):
        data = await server.get_post_data(request) or {}
        data.pop('expand', None)
        obj = CheckoutSession._api_create(**data)
        obj.url = f'{request.scheme}://{request.host}/js.stripe.com/checkout/pay/{obj.id}'
        return server.json_response(obj._export())

    def retrieve(request):
        return server.json_response(session_of(request)._export())

    def page(request):
        obj = session_of(request)
        if obj.status != 'open':
            return web.Response(status=410, text=f'This checkout is {obj.status}.')
        plan = obj._plan
        return web.Response(content_type='text/html', text=CHECKOUT_PAGE.format(
            amount=f'{plan.amount / 100:.2f}', currency=html.escape(plan.currency.upper()),
            interval=html.escape(plan.interval), email=html.escape(obj.customer_email or ''),
            cancel_url=html.escape(obj.cancel_url)))

    async def pay(request):
        obj = session_of(request)
        if obj.status != 'open':
            return web.Response(status=410, text=f'This checkout is {obj.status}.')
        obj._complete()
        raise web.HTTPSeeOther(obj.success_url.replace('{CHECKOUT_SESSION_ID}', obj.id))

    server.app.router.add_route('POST', '/v1/checkout/sessions', create)
    server.app.router.add_route('GET', '/v1/checkout/sessions/{id}', retrieve)
    server.app.router.add_route('GET', '/js.stripe.com/checkout/pay/{id}', page)
    server.app.router.add_route('POST', '/js.stripe.com/checkout/pay/{id}', pay)


def _watch_parent(ppid):
    import threading
    import time

    def watch():
        while True:
            time.sleep(1.0)
            try:
                os.kill(ppid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
            if os.getppid() != ppid:
                os._exit(0)

    threading.Thread(target=watch, name='parent-watch', daemon=True).start()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--port-file', required=True)
    p.add_argument('--pickle-dir', default=None)
    p.add_argument('--access-log', action='store_true')
    p.add_argument('--parent-pid', type=int, default=None,
                   help='exit when this process disappears (no orphans if '
                        'pytest is SIGKILLed)')
    args = p.parse_args(argv)

    if args.parent_pid:
        _watch_parent(args.parent_pid)

    # Patch BEFORE importing localstripe.server (it imports `store`; the patch
    # is on the class so either order works, but be explicit).
    _patch_store(args.pickle_dir)
    _patch_billing_reason()

    from aiohttp import web
    from localstripe import server

    _add_checkout_sessions()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]

    tmp = args.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write(str(port))
    os.replace(tmp, args.port_file)

    access_log = None
    if args.access_log:
        access_log = logging.getLogger('aiohttp.access')
        access_log.setLevel(logging.DEBUG)
        access_log.addHandler(logging.StreamHandler(sys.stderr))
    # localstripe's webhook sender logs to 'aiohttp.access' too
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    web.run_app(server.app, sock=sock, access_log=access_log,
                print=None, handle_signals=True)


if __name__ == '__main__':
    main()
