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
