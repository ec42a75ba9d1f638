"""Which declines are hard (a retry cannot succeed: ask the member for a new card) and which are
soft (retry on the policy's schedule). The one list: the processor adapters classify their
declines with `is_hard_decline`, and dunning uses the same function for retries' answers.

Decided here, and why:
- hard: the card or account is gone or wrong (lost_card, stolen_card, pickup_card, incorrect_number,
  invalid_number, invalid_account, expired_card, incorrect_cvc, invalid_cvc, invalid_expiry_month,
  invalid_expiry_year), the member or issuer withdrew the authorisation (revocation_of_authorization,
  revocation_of_all_authorizations, stop_payment_order), the issuer wants the member present
  (authentication_required, the 3-D Secure failure payment_intent_authentication_failure), or the card
  can never take this charge (card_not_supported, currency_not_supported, restricted_card,
  transaction_not_allowed, security_violation, fraudulent, merchant_blacklist,
  new_account_information_available). Retrying these only adds declines to the member's record.
- soft: everything else, notably insufficient_funds, generic_decline, card_declined (no detail),
  processing_error, try_again_later, issuer_not_available, card_velocity_exceeded,
  withdrawal_count_limit_exceeded, and **do_not_honor**: the issuer's catch-all, often a temporary
  block (velocity, fraud screen); processors' own smart retries retry it and a share recovers, so it
  follows the retry schedule (the member is messaged at every step anyway).
An unknown code is soft: a retry costs little, a wrongly hard case stops recovering on its own.

This module imports nothing of the project, so the edges may import it without loading dunning.
"""

from __future__ import annotations

HARD_DECLINE_CODES = frozenset({
    "lost_card", "stolen_card", "pickup_card",
    "incorrect_number", "invalid_number", "invalid_account", "expired_card",
    "incorrect_cvc", "invalid_cvc", "invalid_expiry_month", "invalid_expiry_year",
    "revocation_of_authorization", "revocation_of_all_authorizations", "stop_payment_order",
    "authentication_required", "payment_intent_authentication_failure",
    "card_not_supported", "currency_not_supported", "restricted_card", "transaction_not_allowed",
    "security_violation", "fraudulent", "merchant_blacklist", "new_account_information_available",
})


def is_hard_decline(*codes: str | None) -> bool:
    """True when any of the codes (a processor's error code, its decline code…) is a hard decline."""
    return any((code or "").strip().lower() in HARD_DECLINE_CODES for code in codes)
