"""The dashboard's "staff hours saved" (`billing.metrics.payback.staff_time_saved`), each from the
environment like the rest (listed in .env.example):

- `STAFF_MINUTES_PER_BALANCE_LOOKUP`: a member who opened their own page instead of calling to ask
  what is left;
- `STAFF_MINUTES_PER_RECONCILIATION_ITEM`: a discrepancy a later reconciliation run closed, which
  staff would have checked by hand;
- `STAFF_MINUTES_PER_SELF_SERVED_REQUEST`: a pause or cancellation the member did on their page with
  no staff step;
- `STAFF_HOURLY_COST_CENTS`: what an hour of front-desk time costs (wage and overhead), in cents."""

import environ

env = environ.Env()

__all__ = ["STAFF_MINUTES_PER_BALANCE_LOOKUP", "STAFF_MINUTES_PER_RECONCILIATION_ITEM",
           "STAFF_MINUTES_PER_SELF_SERVED_REQUEST", "STAFF_HOURLY_COST_CENTS"]

STAFF_MINUTES_PER_BALANCE_LOOKUP = env.int("STAFF_MINUTES_PER_BALANCE_LOOKUP", default=4)
STAFF_MINUTES_PER_RECONCILIATION_ITEM = env.int("STAFF_MINUTES_PER_RECONCILIATION_ITEM", default=6)
STAFF_MINUTES_PER_SELF_SERVED_REQUEST = env.int("STAFF_MINUTES_PER_SELF_SERVED_REQUEST", default=10)
STAFF_HOURLY_COST_CENTS = env.int("STAFF_HOURLY_COST_CENTS", default=2500)
