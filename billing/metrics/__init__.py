"""Aggregates for the manager dashboard (and anyone else who needs them), by what they measure.
Reads only; every function takes `now` (where time matters) and a practice id (None: all).

- `members`: members and MRR by tier over time;
- `payments`: failed vs recovered dollars;
- `credit`: redemptions per service, credit liability, breakage (by month in the practice's zone);
- `payback`: the payback metrics week by week (dunning cases, discrepancies, disputes), and the
  staff hours saved month by month (member-page look-ups, discrepancies closed without staff,
  self-served requests; minutes per item and the hourly cost in settings);
- `requests`: the reasons members gave for cancelling on their own page;
- `attention`: what the edges report needs a person (a reader `integrations` registers);
- `dashboard`: all of it for the dashboard page; `months`: what the monthly series share.

The monthly figures are derived from the ledger (memberships, entries, balances) and the timeline
(Events); the processor's invoices are not needed, so they hold before the processor is connected.
The payback weeks also read the dunning cases and reconciliation's discrepancies.
"""

from .attention import needs_attention, register_attention_reader
from .credit import Breakage, Liability, ServiceAmount, breakage_by_month, credit_liability, redemptions_per_service
from .dashboard import Dashboard, dashboard
from .members import MembersOverTime, TierSeries, members_by_tier_over_time, monthly_price_cents
from .months import month_starts
from .payback import PaybackWeek, StaffMinutes, StaffTimeSaved, payback_weeks, practice_zone, staff_time_saved
from .payments import FailedRecovered, failed_vs_recovered
from .requests import cancellation_reasons

__all__ = [
    "Breakage", "Dashboard", "FailedRecovered", "Liability", "MembersOverTime", "PaybackWeek", "ServiceAmount",
    "TierSeries", "breakage_by_month", "cancellation_reasons", "credit_liability", "dashboard", "failed_vs_recovered",
    "members_by_tier_over_time", "month_starts", "monthly_price_cents", "needs_attention", "payback_weeks",
    "practice_zone", "redemptions_per_service", "register_attention_reader", "StaffMinutes", "StaffTimeSaved",
    "staff_time_saved",
]
