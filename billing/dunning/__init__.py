"""Dunning: failed payments chased, members told, the chart flagged. The public hand-off points:"""

from .services import (  # noqa: F401
    cancel_case,
    cancel_case_for_invoice,
    close_case_for_payment,
    mark_contacted,
    open_case_for_failure,
    rearm_unreachable_retry,
    record_message_sent,
    record_message_status,
    record_message_undeliverable,
    record_retry_result,
    resend_card_link,
    retry_after_card_update,
    retry_open_cases_after_card_update,
    run_dunning,
)
