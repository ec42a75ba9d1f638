"""Hand-offs from the processor path to the rest of billing (dunning, reconciliation).

Both are sent inside the transaction that recorded the outcome, once per new outcome (a replayed
webhook sends nothing), so a receiver's writes commit or roll back together with ours. A receiver
must not call the outside world directly: write an Event and let the outbox deliver it.

    charge_failed(sender=Invoice, invoice=Invoice, membership=Membership, hard=bool,
                  failure_code=str, decline_code=str, action_required=bool, attempt_count=int, now=datetime)
    charge_succeeded(sender=Invoice, invoice=Invoice, membership=Membership, recovered=bool, now=datetime)
"""

from django.dispatch import Signal

charge_failed = Signal()
charge_succeeded = Signal()
