"""The ledger's invariants, checked after every step of the property tests and scenario tests, and
the thread harness of the concurrency tests."""

import threading

from django.db import close_old_connections, connection
from django.db.models import Sum

from memberships.models import CreditLot, EntitlementBalance, LedgerEntry, Reservation, ReservationStatus
from tests.support.waiting import PATIENCE


def assert_ledger_consistent(membership):
    for bal in EntitlementBalance.objects.filter(membership=membership):
        entries = LedgerEntry.objects.filter(membership=membership, service_id=bal.service_id)
        total = entries.aggregate(s=Sum("quantity"))["s"] or 0
        lots = CreditLot.objects.filter(membership=membership, service_id=bal.service_id).aggregate(
            s=Sum("remaining"))["s"] or 0
        held = Reservation.objects.filter(membership=membership, service_id=bal.service_id,
                                          status=ReservationStatus.HELD).aggregate(s=Sum("quantity"))["s"] or 0
        assert bal.balance == total, f"balance {bal.balance} != sum of entries {total}"
        assert bal.balance == lots, f"balance {bal.balance} != open lots {lots}"
        assert bal.reserved == held, f"reserved {bal.reserved} != held reservations {held}"
        assert 0 <= bal.reserved <= bal.balance


def balance_of(membership, service):
    return EntitlementBalance.objects.get(membership=membership, service=service)


def hammer(fn, n):
    """Run fn(i) in n threads released together; return (results, errors). The threads are only
    released together: under load one may finish before another starts, so a test accepts every
    order in which they could have run."""
    barrier = threading.Barrier(n)
    results, errors = [], []
    lock = threading.Lock()

    def worker(i):
        try:
            barrier.wait()
            out = fn(i)
            with lock:
                results.append(out)
        except Exception as exc:  # noqa: BLE001 — collected and asserted on below
            with lock:
                errors.append(exc)
        finally:
            connection.close()
            close_old_connections()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    stuck = sum(t.is_alive() for t in threads)
    assert not stuck, f"{stuck} of {n} threads still running after {PATIENCE:.0f} s"
    return results, errors
