"""The staff page that creates a processor-hosted card link (the edge lives here: the core and
billing never call the processor). The card is entered on the processor's page, never here."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from memberships import selectors
from memberships.errors import LedgerError
from memberships.models import Member, MembershipStatus
from memberships.services.common import Actor, write_audit
from memberships.views.common import audit_view, client_ip, practice_scope, staff_page

from . import services as edge


def _can_send_card_links(user) -> bool:
    return user.has_perm("memberships.manage_membership") or user.has_perm("memberships.view_dashboard")


@staff_page("view_chart")
def card_link(request, member_id: int):
    """GET explains; POST asks the processor for a hosted card page and shows its link, to open on
    the desk's tablet or to read out / paste into a message to the member."""
    if not _can_send_card_links(request.user):
        raise PermissionDenied
    scope = practice_scope(request.user)
    members = Member.objects.select_related("practice")
    member = (members.filter(practice_id=scope) if scope is not None else members).filter(pk=member_id).first()
    if member is None:
        raise Http404("No such member")
    membership = selectors.current_membership(member=member)
    if membership is None or membership.status == MembershipStatus.CANCELLED:
        raise Http404("No open membership")
    context = {"member": member, "membership": membership, "url": None, "error": None,
               "starting": not membership.processor_subscription_id}
    if request.method == "POST":
        now, actor = timezone.now(), Actor.staff(request.user, ip_address=client_ip(request))
        try:
            with transaction.atomic():
                context["url"] = edge.card_link(membership=membership, now=now)
                write_audit(actor=actor, action="card_link", obj=membership, member=member,
                            detail={"starting": context["starting"]}, now=now)
        except LedgerError as exc:
            context["error"] = exc.message
            audit_view(request, action="card_link_page", members=[member])   # the page names the member
            return render(request, "integrations/card_link.html", context, status=409)
    else:
        audit_view(request, action="card_link_page", members=[member])
    return render(request, "integrations/card_link.html", context)
