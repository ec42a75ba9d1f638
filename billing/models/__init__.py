"""Billing's models, one module per aggregate:

- `invoices`: the processor's invoices and subscriptions, as last reported;
- `dunning`: dunning policies (versioned), cases, their steps, payment retries and member messages;
- `imports`: spreadsheet import batches and the spreadsheet's view of each member;
- `reconciliation`: reconciliation runs and the discrepancies they found;
- `notices`: member notices (upcoming charge, expiring credit) and each practice's notice timing;
- `group`: a group's dashboard figures as last computed.
"""

from .dunning import (
    MESSAGE_STATUS_RANK,
    AttemptStatus,
    DunningAttempt,
    DunningCase,
    DunningCaseStatus,
    DunningMessage,
    DunningPolicy,
    DunningStep,
    ExhaustedAction,
    MessageChannel,
    MessageStatus,
    StepChannels,
    StepKind,
    StepStatus,
)
from .group import GroupFigures
from .imports import ImportBatch, ImportStatus, SheetRow
from .invoices import Invoice, InvoiceStatus, ProcessorSubscription
from .notices import ChannelStatus, MemberNotice, NoticeKind, NoticeSettings, NoticeStatus
from .reconciliation import Discrepancy, DiscrepancyKind, ReconciliationRun

__all__ = [
    "MESSAGE_STATUS_RANK", "AttemptStatus", "Discrepancy", "DiscrepancyKind", "DunningAttempt", "DunningCase",
    "DunningCaseStatus", "DunningMessage", "GroupFigures", "DunningPolicy", "DunningStep", "ExhaustedAction", "ImportBatch",
    "ImportStatus", "Invoice", "InvoiceStatus", "MessageChannel", "MessageStatus", "ProcessorSubscription",
    "ReconciliationRun", "SheetRow", "StepChannels", "StepKind", "StepStatus",
    "ChannelStatus", "MemberNotice", "NoticeKind", "NoticeSettings", "NoticeStatus",
]
