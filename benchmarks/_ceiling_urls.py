"""The benchmarks' URLConf (medspa.settings.bench): the project's URLs, and the webhook ceiling that
benchmarks/webhooks.py measures our Stripe endpoint against.

`POST /bench/ceiling/stripe/` is the least a correct Stripe webhook endpoint does: check the
`Stripe-Signature` HMAC (and its 5-minute tolerance), read the event's id and type, and store the raw
body with one `INSERT … ON CONFLICT DO NOTHING` into the inbox table — no NUL check, no trigger of
the worker, nothing else. It is served by the same Django stack (middleware, gunicorn) as ours."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

_TABLE = "integrations_inboundevent"


@csrf_exempt
def bare_stripe_webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse({"code": "method_not_allowed"}, status=405)
    body = request.body
    timestamp, signatures = 0, []
    for item in request.headers.get("Stripe-Signature", "").split(","):
        key, _, value = item.partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    expected = hmac.new(settings.STRIPE_WEBHOOK_SECRET.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    if abs(time.time() - timestamp) > 300 or not any(hmac.compare_digest(expected, s) for s in signatures):
        return JsonResponse({"code": "invalid_signature"}, status=400)
    event = json.loads(body)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (source, event_id, event_type, payload, status, error, attempts, object_created, "
            f"received_at, processed_at, next_attempt_at, practice_id) VALUES ('stripe', %s, %s, %s::jsonb, "
            f"'received', '', 0, %s, now(), NULL, NULL, NULL) ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
            [str(event["id"]), str(event["type"]), body.decode(), int(event.get("created") or 0) or None])
        created = cursor.fetchone() is not None
    return JsonResponse({"received": True, "duplicate": not created})


urlpatterns = [
    path("bench/ceiling/stripe/", bare_stripe_webhook),
    path("", include("medspa.urls")),
]
