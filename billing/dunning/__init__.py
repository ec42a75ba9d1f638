"""Dunning: failed payments chased, members told, the chart flagged. The modules, one job each:

- `cases`: a case's state (folded, recovered, cancelled, staff's contact note) and what the others share;
- `opening`: opening cases, one failure a webhook reports or a sweep's many, by one set of rules;
- `policy`: versioned policies, and the steps a policy plans for a new case;
- `schedule`: the scheduled run that works off the due steps (and the exhaustion at the end);
- `sweep`: the run's set-based start: the cases of failed invoices that have none, due messages in bulk;
- `retries`: payment retries and the processor's answers, a retry after a card update;
- `messages`: messages to the member, what the provider reports back, the staff's resend;
- `uncertain`: a message whose sending stopped half-way ("may have been sent") or was given up, and a
  manager's redelivery;
- `declines`, `quiet`, `rendering`, `links`: hard declines, quiet hours, message bodies, card links.

The public hand-off points, for the edges (`integrations`) and the tests:"""

from .cases import (
    cancel_case,
    cancel_case_for_invoice,
    close_case_for_payment,
    mark_contacted,
)
from .messages import (
    record_message_held_back,
    record_message_sent,
    record_message_status,
    record_message_undeliverable,
    resend_card_link,
    withdraw_message,
)
from .opening import open_case_for_failure
from .retries import (
    rearm_unreachable_retry,
    record_retry_result,
    retry_after_card_update,
    retry_open_cases_after_card_update,
)
from .schedule import run_dunning
from .uncertain import rearm_message, record_message_dead, record_message_uncertain

__all__ = [
    "cancel_case", "cancel_case_for_invoice", "close_case_for_payment", "mark_contacted", "open_case_for_failure",
    "rearm_unreachable_retry", "record_message_sent", "record_message_status", "record_message_undeliverable",
    "record_retry_result", "resend_card_link", "retry_after_card_update", "retry_open_cases_after_card_update",
    "record_message_held_back", "run_dunning", "withdraw_message", "record_message_uncertain",
    "rearm_message", "record_message_dead",
]
