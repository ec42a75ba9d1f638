"""Inbound webhooks. The view only verifies, stores once and answers: processing is a task."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import intake
from .processors import square_events, stripe_events

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """POST /webhooks/stripe/ — 400 (nothing stored) on a bad signature; 200 otherwise, at once."""
    try:
        event = stripe_events.verify_and_parse(body=request.body,
                                               signature_header=request.headers.get("Stripe-Signature", ""),
                                               secret=settings.STRIPE_WEBHOOK_SECRET)
    except stripe_events.InvalidSignature:
        logger.warning("stripe webhook with a bad signature refused")
        return JsonResponse({"code": "invalid_signature", "detail": "Signature verification failed."}, status=400)
    if intake.has_nul(request.body):
        return JsonResponse({"code": "invalid_payload", "detail": "The body contains a NUL character."}, status=400)
    handled = stripe_events.is_handled(event["type"])
    _, created = intake.store_event(source=intake.SOURCE_STRIPE, event=event, handled=handled, now=timezone.now(),
                                   raw=request.body)
    if not created:
        return JsonResponse({"received": True, "duplicate": True})
    return JsonResponse({"received": True, "status": "received" if handled else "ignored"})


@csrf_exempt
@require_POST
def square_webhook(request: HttpRequest) -> JsonResponse:
    """POST /webhooks/square/ — `x-square-hmacsha256-signature` checked over SQUARE_WEBHOOK_URL (the
    URL as configured at Square, never rebuilt from this request) + the raw body: 400, nothing
    stored, when it does not match; else stored once per `event_id` and answered at once."""
    try:
        event = square_events.verify(body=request.body,
                                     signature_header=request.headers.get(square_events.SIGNATURE_HEADER, ""),
                                     signature_key=settings.SQUARE_WEBHOOK_SIGNATURE_KEY,
                                     notification_url=settings.SQUARE_WEBHOOK_URL)
    except square_events.InvalidSignature:
        logger.warning("square webhook with a bad signature refused")
        return JsonResponse({"code": "invalid_signature", "detail": "Signature verification failed."}, status=400)
    if intake.has_nul(request.body):
        return JsonResponse({"code": "invalid_payload", "detail": "The body contains a NUL character."}, status=400)
    envelope = square_events.envelope_of(event)
    handled = square_events.is_handled(envelope["type"])
    _, created = intake.store_event(source=square_events.SOURCE, event=envelope, handled=handled,
                                    now=timezone.now(), raw=request.body)
    if not created:
        return JsonResponse({"received": True, "duplicate": True})
    return JsonResponse({"received": True, "status": "received" if handled else "ignored"})
