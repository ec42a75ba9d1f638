"""Whether the worker's cluster is stopping, so the long-running drains can stop between two batches.

django-q2 stops a `qcluster` (SIGTERM or SIGINT to its process: `docker stop`, Kubernetes, `kill`,
Ctrl-C) by letting every worker finish its current task and then every task the cluster had
already pulled from the broker. The inbox and outbox drains loop until their backlog is done (the
inbox's for up to INBOX_SWEEP_SECONDS), so a stop waited for them: 15–40 s, past the 10 s most
process managers give before SIGKILL.

Here the cluster's own signal handler first raises a flag kept in one byte of memory that the
qcluster process shares with every process it forks — the sentinel and its workers, reincarnated
ones included — and then runs django-q2's stop as before. The drains look at the flag before each
batch (the outbox's before each delivery, so no more than the message in hand is with a provider
when the worker goes): a drain that sees it returns and hands the rest back to the queue, for
another host's cluster or the next start. Each batch is its own transaction, so stopping between two loses
nothing.

SIGTERM to the whole process group (systemd's default, supervisor's `stopasgroup`) also reaches
the workers themselves. django-q2 leaves them the default action: they end at once, and the batch
in hand is rolled back with its connection — its events stay received for the next sweep. An outbox
worker ended while handing a member's SMS or email to its provider leaves that delivery marked
SENDING (committed before the call): no worker sends it again by itself; it shows as "may have been
sent" for a manager (`integrations.uncertain`).
"""

from __future__ import annotations

import mmap
import time

# Anonymous shared memory (MAP_SHARED), mapped when this module is first imported: in the qcluster
# process that is when Django loads the apps (IntegrationsConfig.ready), before the cluster forks,
# so the sentinel and the workers all see this same byte. (Under the "spawn" start method, not
# Linux's default, each process would have its own: the drains then run on as they did before.)
_FLAG = mmap.mmap(-1, 1)


def request_stop() -> None:
    """Raise the flag. Safe inside a signal handler: one byte written, no lock taken."""
    _FLAG[0] = 1


def stop_requested() -> bool:
    return _FLAG[0] == 1


def clear() -> None:
    """Lower the flag (a test, or a new cluster started in the same process)."""
    _FLAG[0] = 0


def sleep(seconds: float, *, step: float = 0.1) -> bool:
    """Sleep up to `seconds`, waking early when the cluster is stopping. True: it is stopping."""
    end = time.monotonic() + seconds
    while not stop_requested():
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(step, left))
    return True


def raise_flag_when_the_cluster_stops() -> None:
    """Make django-q2's cluster raise the flag when it is told to stop, before its own stop
    procedure begins. Its `Cluster.sig_handler` (the SIGTERM/SIGINT handler that `Cluster()`
    installs in the qcluster process) is wrapped once; nothing else of it changes."""
    from django_q.cluster import Cluster

    if getattr(Cluster.sig_handler, "raises_stop_flag", False):
        return
    stop = Cluster.sig_handler

    def sig_handler(self, signum, frame):
        request_stop()
        stop(self, signum, frame)

    sig_handler.raises_stop_flag = True
    sig_handler.__doc__ = stop.__doc__
    Cluster.sig_handler = sig_handler
