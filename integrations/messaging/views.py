"""Twilio's webhooks: inbound SMS (an opt-out recorded at once; START lifts an earlier one, never
gives consent; a reply that looks like a refusal holds the member's texts for a person to read — see
`replies` for the rule) and delivery status callbacks. Both are signed (X-Twilio-Signature over PUBLIC_BASE_URL +
path and the POST params); a bad signature gets 403 and changes nothing."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import dunning
from billing.models import DunningMessage, MessageChannel
from memberships import services as ledger
from memberships.models import Member

from ..models import InboundEvent, InboundStatus
from . import holds, replies
from .sms import TWILIO_OPTED_OUT

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def signature_ok(request: HttpRequest) -> bool:
    from twilio.request_validator import RequestValidator

    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not settings.TWILIO_AUTH_TOKEN:
        return False
    url = settings.PUBLIC_BASE_URL.rstrip("/") + request.get_full_path()
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST, signature)


def _forbidden() -> HttpResponse:
    return HttpResponse("invalid signature", status=403, content_type="text/plain")


def members_to_opt_back_in(phone: str):
    """Whom a START from `phone` concerns. One Twilio sender (TWILIO_FROM_NUMBER or the messaging
    service) serves every practice, so the number that received it names no practice: START lifts
    the opt-out only of members on that phone who gave consent, opted out, and were texted by us
    (a member of another practice with the same phone is not one of them)."""
    return (Member.objects.filter(phone=phone, sms_consent=True, sms_opted_out_at__isnull=False)
            .filter(Exists(DunningMessage.objects.filter(case__member=OuterRef("pk"), channel=MessageChannel.SMS,
                                                         sent_at__isnull=False))))


def _act_on_reply(reply: replies.Reply, *, row: InboundEvent, phone: str, text: str, now) -> None:
    if reply.kind == replies.STOP:
        # Twilio blocks an exact keyword for our sender at once: so do we, for every member on it.
        for member in Member.objects.filter(phone=phone):
            ledger.record_sms_opt_out(member=member, actor=ledger.Actor.system("sms"), now=now,
                                      source=f"{reply.keyword} reply")
    elif reply.kind == replies.START:
        for member in members_to_opt_back_in(phone):
            ledger.record_sms_opt_in(member=member, actor=ledger.Actor.system("sms"), now=now,
                                     source=f"{reply.keyword} reply")
    elif reply.kind == replies.REVIEW:
        # Texted by us, not yet opted out: hold their automated texts until a person reads it.
        for member in Member.objects.filter(phone=phone, sms_consent=True, sms_opted_out_at__isnull=True):
            holds.open_hold(member=member, inbound=row, text=text, reason=reply.keyword, now=now)


@csrf_exempt
@require_POST
def inbound(request: HttpRequest) -> HttpResponse:
    if not signature_ok(request):
        logger.warning("twilio inbound webhook with a bad signature refused")
        return _forbidden()
    now = timezone.now()
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    text = request.POST.get("Body") or ""
    reply = replies.classify(text)
    phone = (request.POST.get("From") or "").strip()
    try:
        with transaction.atomic():
            # Stored once (ids and what was read: no phone number, no free text).
            row = InboundEvent.objects.create(source="twilio", event_id=sid or f"no-sid-{now.timestamp()}",
                                              event_type="sms.inbound",
                                              payload={"keyword": reply.kind, "read": reply.keyword},
                                              status=InboundStatus.PROCESSED, received_at=now, processed_at=now)
            if phone:
                _act_on_reply(reply, row=row, phone=phone, text=text, now=now)
    except IntegrityError:
        logger.info("twilio inbound %s already recorded", sid)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


@csrf_exempt
@require_POST
def status(request: HttpRequest) -> HttpResponse:
    if not signature_ok(request):
        logger.warning("twilio status callback with a bad signature refused")
        return _forbidden()
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    new_status = (request.POST.get("MessageStatus") or request.POST.get("SmsStatus") or "").lower()
    error_code = request.POST.get("ErrorCode") or ""
    dunning.record_message_status(provider_id=sid, status=new_status, error_code=error_code,
                                  opted_out=error_code == str(TWILIO_OPTED_OUT), now=timezone.now())
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
