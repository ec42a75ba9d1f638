"""`/webhooks/records/<adapter>/[<practice>/]`: verify, store once, answer at once; a task does the
work. The practice is named by the path, the `X-Medspa-Practice` header or `?practice=<slug>`; a
location that runs its own record by `/webhooks/records/<adapter>/<practice>/locations/<id>/` (its
adapter, config and webhook secret — never the practice's; stored as a source of its own).
A practice that does not exist (or does not use this adapter) is answered exactly like a bad
signature — same status, same body — so the endpoint tells nobody which practices exist."""

from __future__ import annotations

import logging

from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from integrations.intake import has_nul
from memberships.models import Location, Practice

from . import ADAPTERS, get_adapter, record_name
from .base import PRACTICE_HEADER, WebhookRejected
from .inbound import receive_webhook

logger = logging.getLogger(__name__)


NOT_VERIFIED = {"code": "invalid_signature", "detail": "The request could not be verified."}


def _error(code: str, detail: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


def _not_verified() -> JsonResponse:
    return JsonResponse(NOT_VERIFIED, status=401)


@csrf_exempt
@require_http_methods(["POST", "PUT"])
def record_webhook(request, adapter: str, practice: str = "", rest: str = "", location: int | None = None):
    if adapter not in ADAPTERS:
        return _error("unknown_adapter", "No such record adapter.", 404)
    slug = practice or request.headers.get(PRACTICE_HEADER, "") or request.GET.get("practice", "")
    found = Practice.objects.filter(slug=slug).first() if slug else None
    # A location's own record: an active location of that practice that runs this adapter.
    own = (Location.objects.filter(pk=location, practice=found, active=True).exclude(record_adapter="").first()
           if found is not None and location is not None else None)
    # The builtin chart takes no webhooks: answered like an unknown practice, as most practices use it.
    if found is None or record_name(found, own) != adapter or adapter == "builtin" or (location is not None
                                                                                        and own is None):
        logger.info("record webhook for an unknown practice refused")
        return _not_verified()
    body = request.body
    try:
        webhook = get_adapter(found, own).verify_webhook(request, body=body)
    except WebhookRejected as exc:
        logger.info("record webhook refused for practice %s: %s", found.pk, exc.code)
        if exc.code == "invalid_signature":
            return _not_verified()
        return _error(exc.code, str(exc), exc.status)
    if has_nul(body):  # after the signature: before it, a 400 here would say the practice exists
        return _error("invalid_payload", "The body contains a NUL character.", 400)
    row, created = receive_webhook(webhook=webhook, adapter_name=adapter, now=timezone.now())
    return JsonResponse({"status": "received" if created else "duplicate", "id": row.pk})
