"""Stripe webhook signing for tests (no network, no localstripe needed).

Stripe signs ``f"{t}.{raw_body}"`` with HMAC-SHA256 using the endpoint's
signing secret and sends ``Stripe-Signature: t=<unix>,v1=<hex>``.
``stripe.Webhook.construct_event(payload, header, secret, tolerance=300)``
(and ``StripeClient.construct_event``) verify exactly that, and reject
timestamps older than ``tolerance`` seconds relative to *now*.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Optional, Tuple, Union


def sign_payload(payload: bytes, secret: str,
                 timestamp: Optional[int] = None) -> str:
    """Return a ``Stripe-Signature`` header value for ``payload`` (raw bytes
    exactly as they will be POSTed)."""
    if timestamp is None:
        timestamp = int(time.time())
    if isinstance(payload, str):
        payload = payload.encode('utf-8')
    signed = f'{timestamp}.'.encode('ascii') + payload
    v1 = hmac.new(secret.encode('utf-8'), signed, hashlib.sha256).hexdigest()
    return f't={timestamp},v1={v1}'


def signed_event(event: Union[dict, object], secret: str,
                 timestamp: Optional[int] = None) -> Tuple[bytes, str]:
    """Serialise an event (a dict, e.g. a recorded fixture, or an SDK
    ``StripeObject`` such as one returned by ``client.v1.events.list``) and
    sign it. Returns ``(body_bytes, stripe_signature_header)`` ready to POST
    to the project's webhook view with
    ``HTTP_STRIPE_SIGNATURE=header, content_type='application/json'``."""
    if not isinstance(event, dict):
        event = json.loads(str(event))  # StripeObject.__str__ is JSON
    body = json.dumps(event, separators=(',', ':'), sort_keys=True).encode()
    return body, sign_payload(body, secret, timestamp)
