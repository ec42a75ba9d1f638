"""Reads the billing pages share."""

from .dunning.selectors import OpenCase, amount_at_risk, open_case_for_membership, open_dunning_cases  # noqa: F401
