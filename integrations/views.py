"""Inbound webhooks. The view only verifies, stores once and answers: processing is a task."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import intake
from .processors import stripe_events

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
