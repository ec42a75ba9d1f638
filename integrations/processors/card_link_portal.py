"""The hosted page a card-update link opens at Stripe: a Billing Portal session that can do one
thing, replace the card. Not the account's default portal (invoices, address, cancellation…):

- a portal *configuration* of ours with only `payment_method_update` enabled, found by its metadata
  (`medspa_purpose`) or created once (with an idempotency key), and its id cached per process;
- each session opens straight on the card form (`flow_data.type = payment_method_update`, Stripe's
  portal deep link) and sends the member back to our thank-you page when done.

localstripe models no Billing Portal, so this is tested against a local HTTP stand-in answering with
Stripe's recorded bodies (tests/integrations/processors/test_card_link_portal.py)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

from .base import ProcessorRejected

PURPOSE = "card-update-v1"
FEATURES = {
    "payment_method_update": {"enabled": True},
    "invoice_history": {"enabled": False},
    "customer_update": {"enabled": False},
    "subscription_cancel": {"enabled": False},
    "subscription_update": {"enabled": False},
}
CACHE_SECONDS = 24 * 3600


def _cache_key() -> str:
    account = hashlib.sha256(f"{settings.STRIPE_API_BASE}|{settings.STRIPE_SECRET_KEY}".encode()).hexdigest()[:16]
    return f"stripe-portal-configuration:{PURPOSE}:{account}"


def _only_card_update(configuration: dict) -> bool:
    features = configuration.get("features") or {}
    return all(bool((features.get(name) or {}).get("enabled")) == wanted["enabled"]
               for name, wanted in FEATURES.items())


def _find(processor) -> str:
    listed = processor._call(processor.client.v1.billing_portal.configurations.list,
                             {"active": True, "limit": 100})
    for configuration in listed.get("data") or []:
        if (configuration.get("metadata") or {}).get("medspa_purpose") == PURPOSE and _only_card_update(configuration):
            return str(configuration["id"])
    return ""


def configuration_id(processor) -> str:
    """Our card-update-only portal configuration: cached, else found, else created once."""
    key = _cache_key()
    found = cache.get(key)
    if found:
        return found
    found = _find(processor)
    if not found:
        created = processor._call(
            processor.client.v1.billing_portal.configurations.create,
            {"features": FEATURES, "metadata": {"medspa_purpose": PURPOSE},
             "business_profile": {"headline": "Update the card for your membership"}},
            {"idempotency_key": f"medspa-portal-configuration-{PURPOSE}"})
        found = str(created["id"])
    cache.set(key, found, CACHE_SECONDS)
    return found


def card_update_session_url(processor, *, customer_id: str, return_url: str) -> str:
    """A fresh session (they live for minutes) on the card form of our configuration. A cached
    configuration someone deactivated at Stripe is looked up again once."""
    for attempt in (1, 2):
        params = {"customer": customer_id, "return_url": return_url, "configuration": configuration_id(processor),
                  "flow_data": {"type": "payment_method_update",
                                "after_completion": {"type": "redirect", "redirect": {"return_url": return_url}}}}
        try:
            session = processor._call(processor.client.v1.billing_portal.sessions.create, params)
        except ProcessorRejected:
            if attempt == 2:
                raise
            cache.delete(_cache_key())
            continue
        return str(session["url"])
    raise AssertionError("unreachable")
