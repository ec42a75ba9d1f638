"""The manager's staged-rollout page: the stages and what each turns on, what the next stage would
have done (the shadow log), reconciliation's state and the payback so far; moving between stages.
Thin: check the permission, call a service or a selector, audit, render."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.metrics.payback import payback_weeks, practice_zone
from billing.reconciliation.selectors import reconciliation_status
from memberships.errors import LedgerError
from memberships.models import AutomationStage, Location
from memberships.services import Actor
from memberships.services.stages import effective_stage
from memberships.views.common import audit, client_ip, practice_for, staff_page

from .locations import following_practice, location_rollouts, set_location_stage
from .stages import STAGE_EFFECTS, STAGES, next_stage, set_automation_stage, shadow_log

PERMISSION = "view_dashboard"


@staff_page(PERMISSION)
def rollout(request):
    practice = practice_for(request.user)
    now = timezone.now()
    current = practice.automation_stage
    rank = STAGES.index(current)
    labels = dict(AutomationStage.choices)
    stages = [{"value": s, "label": labels[s], "effects": STAGE_EFFECTS[s], "current": s == current,
               "on": i <= rank, "can_go_back": i < rank} for i, s in enumerate(STAGES)]
    upcoming = next_stage(current)
    shadow = shadow_log(practice=practice, now=now, days=30)
    locations = location_rollouts(practice=practice, shadow=shadow)
    shadow = following_practice(shadow, locations)
    next_shadow = [e for e in shadow if e.stage == upcoming]
    audit(request, action="rollout_viewed", obj=practice)
    return render(request, "billing/rollout.html", {
        "stages": stages, "status": reconciliation_status(practice_id=practice.pk),
        "next": {"value": upcoming, "label": labels[upcoming]} if upcoming else None,
        "next_shadow": next_shadow, "later_shadow_count": len(shadow) - len(next_shadow),
        "payback": payback_weeks(practice_id=practice.pk, now=now, zone=practice_zone(practice)),
        "locations": locations, "stage_choices": AutomationStage.choices,
    })


def _move_stage(request, *, current: str, target: str, move, done: str):
    """The steps both stage forms share: moving up needs the confirmation tick; then the door
    (`move`, given the actor and the time) and its outcome in words: `done`, or the door's refusal."""
    moving_up = target in STAGES and STAGES.index(target) > STAGES.index(current)
    if moving_up and request.POST.get("confirm") != "1":
        messages.error(request, "Tick the confirmation to move up a stage.")
        return redirect("mirror:rollout")
    try:
        move(actor=Actor.staff(request.user, ip_address=client_ip(request)), now=timezone.now())
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("mirror:rollout")


@staff_page(PERMISSION)
@require_POST
def rollout_stage(request):
    practice = practice_for(request.user)
    stage = request.POST.get("stage", "")
    return _move_stage(
        request, current=practice.automation_stage, target=stage,
        move=lambda **when: set_automation_stage(practice=practice, stage=stage, **when),
        done=f"Automation stage is now {dict(AutomationStage.choices).get(stage, stage)}.")


@staff_page(PERMISSION)
@require_POST
def rollout_location_stage(request, location_id: int):
    """A location's own stage (or back to following the practice's): the location must be one of the
    manager's practice's; moving up needs the same confirmation as the practice's stage."""
    practice = practice_for(request.user)
    location = get_object_or_404(Location.objects.select_related("practice"), pk=location_id, practice=practice)
    stage = request.POST.get("stage", "")
    target = stage or practice.automation_stage
    labels = dict(AutomationStage.choices)
    words = labels.get(stage, stage) if stage else f"the practice's ({labels.get(target, target)})"
    return _move_stage(
        request, current=effective_stage(practice, location), target=target,
        move=lambda **when: set_location_stage(location=location, stage=stage, **when),
        done=f"{location.name}: automation stage is now {words}.")
