"""The staff page of SMS replies to read: a member's reply that looked like a refusal without being
a plain STOP holds their automated texts until someone here says "opt-out" or "not an opt-out".
Front desk and managers (`manage_membership`) see their practice's open holds; every member shown is
audited (`audit_view`: one row per member, at the staff member's location, one insert per page), every
decision by `holds.clear_hold`."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from memberships.services import Actor
from memberships.views.common import audit_view, client_ip, practice_scope, staff_page

from ..models import SmsHold
from . import holds

PERMISSION = "manage_membership"


@staff_page(PERMISSION)
def sms_replies(request):
    rows = list(holds.open_holds(practice_id=practice_scope(request.user)))
    audit_view(request, action="sms_replies_view", members=[row.member_id for row in rows])
    return render(request, "integrations/sms_replies.html", {"rows": rows})


@require_POST
@staff_page(PERMISSION)
def clear(request, hold_id: int):
    scope = practice_scope(request.user)
    rows = SmsHold.objects.all() if scope is None else SmsHold.objects.filter(practice_id=scope)
    hold = get_object_or_404(rows, pk=hold_id)
    decision = request.POST.get("decision", "")
    if decision not in ("opt_out", "resume"):
        messages.error(request, "Choose whether the reply is an opt-out.")
        return redirect("sms_replies:list")
    opted_out = decision == "opt_out"
    actor = Actor.staff(request.user, ip_address=client_ip(request))
    try:
        holds.clear_hold(hold_id=hold.pk, opted_out=opted_out, actor=actor, now=timezone.now())
    except holds.HoldAlreadyCleared:
        messages.info(request, "Someone already read that reply; nothing was done twice.")
    else:
        messages.success(request, "Recorded as an opt-out: no more texts to this member." if opted_out
                         else "Not an opt-out: the member's texts resume.")
    return redirect("sms_replies:list")
