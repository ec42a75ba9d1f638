"""The public join page of a practice (`/join/<practice>/`): the tiers it offers online, the form,
and the hand-over to the processor's hosted payment page; the pages the member returns to.

Nothing here enrolls anyone: the membership is made when the processor confirms the payment (its
webhook, through the inbox: `integrations.processors.joining.confirm_join`). Returning to the
success page, or reloading it, changes nothing. Below the `tier_sync` stage the page sends people to
the front desk and starts nothing at the processor.

Abuse: CSRF (Django's middleware; the form carries the token), a honeypot field, and a rate limit on
joins started per client address (`JOIN_RATE_LIMIT` per `JOIN_RATE_WINDOW_MINUTES`, counted from
the joins on file — a database count every web process shares)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from integrations.processors.base import ProcessorRejected, ProcessorUnavailable
from integrations.processors.join_hosted import hosted_page_origins, open_hosted_page
from integrations.processors.join_retention import confirmation_held, payment_settling
from memberships.client_ip import client_ip
from memberships.models import AgreementAcceptance, JoinAttempt, MembershipStatus, Practice
from memberships.services import joining

from .forms import SMS_CONSENT_TEXT, JoinForm
from .wording import tier_offers

logger = logging.getLogger(__name__)


def _practice(slug: str) -> Practice:
    return get_object_or_404(Practice, slug=slug)


def _plain(request, practice: Practice, *, title: str, text: str, status: int = 200) -> HttpResponse:
    return render(request, "portal/join/message.html",
                  {"practice": practice, "title": title, "text": text}, status=status)


def _rate_limited(ip: str | None, *, now) -> bool:
    since = now - timedelta(minutes=settings.JOIN_RATE_WINDOW_MINUTES)
    return joining.recent_joins_from(ip, since=since) >= settings.JOIN_RATE_LIMIT


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, practice_slug: str) -> HttpResponse:
    """The page, and its form's hand-over to the hosted payment page: the Content-Security-Policy's
    `form-action` lets the form's redirect reach the processor's page (and nowhere else)."""
    response = _join(request, practice_slug)
    response._csp_update = {"form-action": hosted_page_origins(Practice.objects.filter(slug=practice_slug).first())}
    return response


def _join(request: HttpRequest, practice_slug: str) -> HttpResponse:
    now = timezone.now()
    practice = _practice(practice_slug)
    tiers = list(joining.tiers_offered_online(practice))
    agreement = joining.current_agreement(practice, now=now)
    context = {"practice": practice, "offers": tier_offers(tiers), "agreement": agreement,
               "open": joining.joins_open(practice) and bool(tiers) and agreement is not None}
    if not context["open"]:
        return render(request, "portal/join/page.html", context)
    consent_text = SMS_CONSENT_TEXT.format(practice=practice.name)
    form = JoinForm(request.POST or None, tiers=tiers, sms_consent_text=consent_text,
                    initial={"agreement_version": agreement.version})
    context["form"] = form
    if request.method != "POST":
        return render(request, "portal/join/page.html", context)
    if form.is_bot():
        logger.info("join page of practice %s: honeypot filled; nothing started", practice.pk)
        return _plain(request, practice, title="We could not take this request",
                      text="Please try again, or call the clinic to join.", status=400)
    ip = client_ip(request)
    if _rate_limited(ip, now=now):
        logger.info("join page of practice %s: rate limit reached for an address", practice.pk)
        return _plain(request, practice, title="Too many attempts",
                      text="Please try again later, or call the clinic to join.", status=429)
    if not form.is_valid():
        return render(request, "portal/join/page.html", context, status=400)
    if form.cleaned_data["agreement_version"] != agreement.version:
        form.add_error(None, "The membership agreement was updated while you were reading it: please read it "
                             "again and accept the current version.")
        return render(request, "portal/join/page.html", context, status=409)
    return _start(request, practice, form=form, tiers=tiers, agreement=agreement, ip=ip,
                  consent_text=consent_text, now=now)


def _start(request, practice, *, form, tiers, agreement, ip, consent_text, now) -> HttpResponse:
    data = form.cleaned_data
    tier = next(t for t in tiers if t.pk == data["tier"])
    try:
        attempt = joining.start_join(
            practice=practice, tier=tier, agreement=agreement, first_name=data["first_name"],
            last_name=data["last_name"], email=data["email"], phone=data["phone"],
            sms_consent_text=consent_text if data["sms_consent"] else "", ip_address=ip, now=now)
    except joining.JoinNotOffered as exc:
        return _plain(request, practice, title="Please call the clinic", text=str(exc), status=409)
    done = request.build_absolute_uri(reverse("portal:join:done", args=[practice.slug, attempt.ref]))
    cancel = request.build_absolute_uri(reverse("portal:join:cancelled", args=[practice.slug, attempt.ref]))
    try:
        checkout = open_hosted_page(attempt=attempt, success_url=done, cancel_url=cancel, now=now)
    except (ProcessorUnavailable, ProcessorRejected) as exc:
        logger.warning("join %s: the hosted payment page could not be opened (%s)", attempt.pk, type(exc).__name__)
        JoinAttempt.objects.filter(pk=attempt.pk).delete()
        return _plain(request, practice, title="Please try again in a few minutes",
                      text="The payment page is not available right now. Nothing was charged.", status=503)
    return HttpResponseRedirect(checkout.url)


@require_GET
def done(request: HttpRequest, practice_slug: str, join_ref: str) -> HttpResponse:
    """Where the hosted page sends the member after paying. Reads only: the membership is made by
    the processor's confirmation, which may come a moment later; a confirmation held for a manager
    (she already has a membership, say) is said so, and a join no longer on file sends her to the
    clinic (a plain page of the practice's, not the staff site's)."""
    practice = _practice(practice_slug)
    accepted = (AgreementAcceptance.objects.filter(join_ref=join_ref, member__practice=practice)
                .select_related("membership").first())
    attempt = (JoinAttempt.objects.filter(ref=join_ref, practice=practice).select_related("practice", "tier").first()
               if accepted is None else None)
    if accepted is None and attempt is None:
        return _plain(request, practice, status=404, title="We could not find this membership sign-up",
                      text="If you paid for a membership, please call the clinic: they can see your payment and "
                           "will finish setting it up.")
    if accepted is not None and accepted.membership.status == MembershipStatus.ACTIVE:
        title, text = "Welcome!", "Your membership is active. See you soon at the clinic."
    elif attempt is not None and confirmation_held(attempt):
        title, text = ("Your payment was received", "The clinic needs to finish setting up your membership before "
                       "it starts; they have been told and will be in touch. You do not need to pay again.")
    elif attempt is not None and payment_settling(attempt):
        title, text = ("Thank you!", "Your bank payment is on its way: a payment from a bank account takes a few "
                       "business days to clear. Your membership starts as soon as it does; you do not need to pay "
                       "again.")
    else:
        title, text = ("Thank you!", "We are confirming your payment with our payment processor; your membership "
                       "starts as soon as it does, usually within a few minutes: reload this page to see. You do "
                       "not need to pay again.")
    return _plain(request, practice, title=title, text=text)


@require_GET
def cancelled(request: HttpRequest, practice_slug: str, join_ref: str) -> HttpResponse:
    """The member left the hosted page without paying: nothing was charged; the form is a click away."""
    practice = _practice(practice_slug)
    return render(request, "portal/join/message.html", {
        "practice": practice, "title": "No payment was made",
        "text": "You left the payment page, so nothing was charged and no membership was started.",
        "again": reverse("portal:join:page", args=[practice.slug])})
