"""The ledger's write operations. Each is one transaction, keyword-only, takes `now`, records an
Event, and is idempotent on its key."""

from .adjustments import (
    adjust_balance,
    expire_due_frozen_balances,
    expire_frozen_balances,
    grant_opening_balance,
    reverse_entry,
)
from .catalog import new_tier_version
from .common import Actor, record_event
from .consent import record_sms_opt_in, record_sms_opt_out
from .flags import clear_chart_flag, set_chart_flag
from .imports import ImportedMembership, activate_imported_membership, import_memberships
from .lifecycle import (
    cancel_membership,
    change_tier,
    enroll_member,
    mark_lapsed,
    mark_past_due,
    mark_recovered,
    pause_membership,
    resume_due_pauses,
    resume_key,
    resume_membership,
)
from .redemption import (
    Redeemed,
    check_redeemable,
    commit_reservation,
    redeem_at_desk,
    redeem_entitlement,
    release_reservation,
    reserve_entitlement,
)
from .members import create_member
from .refill import paid_before_pause, refill_entitlements

__all__ = [
    "Actor",
    "Redeemed",
    "ImportedMembership",
    "activate_imported_membership",
    "adjust_balance",
    "cancel_membership",
    "change_tier",
    "check_redeemable",
    "clear_chart_flag",
    "commit_reservation",
    "create_member",
    "enroll_member",
    "expire_due_frozen_balances",
    "expire_frozen_balances",
    "grant_opening_balance",
    "import_memberships",
    "mark_lapsed",
    "new_tier_version",
    "mark_past_due",
    "mark_recovered",
    "pause_membership",
    "record_event",
    "record_sms_opt_in",
    "record_sms_opt_out",
    "redeem_at_desk",
    "redeem_entitlement",
    "paid_before_pause",
    "refill_entitlements",
    "release_reservation",
    "reserve_entitlement",
    "resume_due_pauses",
    "resume_key",
    "resume_membership",
    "set_chart_flag",
    "reverse_entry",
]
