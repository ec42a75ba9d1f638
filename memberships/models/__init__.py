"""The membership ledger: who is a member, of which tier, and what they are entitled to.

Balances are caches of the append-only `LedgerEntry` sums, kept by the same transaction and guarded
by database CHECK constraints. State changes happen only in `memberships.services`.

One module per aggregate: `practice` (the practice and its locations), `catalogue` (services, tiers,
benefits), `members`, `membership` (memberships, credit lots, balances), `ledger` (entries, lot
movements, holds), `timeline` (events, chart flags, operations), `staff` (staff profiles, audit
log, API tokens), `joining` (the membership agreement, joins under way, acceptances), `member_requests` (a member's pause or cancellation request); `append_only` is the base of the rows never updated. Every model is importable from here.
"""

from .append_only import AppendOnlyModel, AppendOnlyQuerySet
from .catalogue import (BillingInterval, RedeemableAt, RolloverRule, Service, ServiceKind, Tier, TierBenefit,
                        TierLocationPrice)
from .joining import AgreementAcceptance, JoinAttempt, MembershipAgreement
from .ledger import ActorType, EntryKind, LedgerEntry, LotMovement, Reservation, ReservationStatus
from .member_requests import MemberRequest, MemberRequestKind, MemberRequestReason, MemberRequestStatus
from .members import Member
from .membership import CreditLot, EntitlementBalance, LotSource, Membership, MembershipStatus
from .practice import AutomationStage, Location, Organization, Practice, RedemptionWhenPastDue
from .staff import ApiToken, AuditLog, StaffProfile
from .timeline import ChartFlag, ChartFlagStatus, Event, EventKind, Operation

__all__ = [
    "ActorType",
    "AgreementAcceptance",
    "ApiToken",
    "AppendOnlyModel",
    "AppendOnlyQuerySet",
    "AuditLog",
    "AutomationStage",
    "BillingInterval",
    "ChartFlag",
    "ChartFlagStatus",
    "CreditLot",
    "EntitlementBalance",
    "EntryKind",
    "Event",
    "EventKind",
    "JoinAttempt",
    "LedgerEntry",
    "Location",
    "LotMovement",
    "LotSource",
    "Member",
    "MemberRequest",
    "MemberRequestKind",
    "MemberRequestReason",
    "MemberRequestStatus",
    "Membership",
    "MembershipAgreement",
    "MembershipStatus",
    "Operation",
    "Organization",
    "Practice",
    "RedemptionWhenPastDue",
    "RedeemableAt",
    "Reservation",
    "ReservationStatus",
    "RolloverRule",
    "Service",
    "ServiceKind",
    "StaffProfile",
    "Tier",
    "TierBenefit",
    "TierLocationPrice",
]
