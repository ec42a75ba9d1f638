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
