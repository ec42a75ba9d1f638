"""Member notices (issue 20 §3): an upcoming-charge notice N days before each renewal and a "use it
before it expires" notice D days before a cycle boundary that would expire unused benefits, by
email and (with consent) SMS, once per membership and boundary, from the `notices` automation stage
on. `planning` decides and writes them (the scheduled run), `sending` records what each channel
did (the outbox destination in `integrations.messaging.notices` sends them), `wording` says them."""

from .planning import due_membership_ids, plan_batch, plan_notices
from .sending import (
    NoticeNotResendable,
    channel_status,
    no_longer_due,
    notice_for_sending,
    rearm_channel,
    record_channel,
    settle_terms,
    shared_with_household,
    withdraw_notice,
)

__all__ = ["NoticeNotResendable", "channel_status", "due_membership_ids", "no_longer_due", "notice_for_sending",
           "plan_batch", "plan_notices", "rearm_channel", "record_channel", "settle_terms",
           "shared_with_household", "withdraw_notice"]
