"""Dunning policies: versioned data. `current_policy` gives the practice's current version (the
defaults on first use); `update_dunning_policy` validates a change and saves it as a new version.
Open cases keep the version they started under; `plan_steps` turns it into a new case's steps."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.template import Context, Template, TemplateSyntaxError

from billing.models import DunningCase, DunningPolicy, DunningStep, ExhaustedAction, StepChannels, StepKind
from memberships.models import Practice, Service, Tier
from memberships.services import Actor
from memberships.services.common import write_audit

from .errors import InvalidPolicy
from .processor_retries import no_payment_retry

TEMPLATE_VARIABLES = ("first_name", "practice_name", "card_update_link")
EDITABLE_FIELDS = (
    "retry_offsets_days", "step_channels", "use_processor_retries", "exhaust_after_days", "exhausted_action",
    "flag_text", "sms_template", "email_subject_template", "email_body_template",
)
_VAR = re.compile(r"{{\s*([^}|\s]+)[^}]*}}")


def current_policy(*, practice: Practice, now: datetime) -> DunningPolicy:
    policy = DunningPolicy.objects.filter(practice=practice, is_current=True).first()
    if policy is not None and (policy.use_processor_retries or not no_payment_retry(practice)):
        return policy
    with transaction.atomic():
        Practice.objects.select_for_update().get(pk=practice.pk)  # one first version, even when raced
        policy = DunningPolicy.objects.filter(practice=practice, is_current=True).first()
        if policy is None:
            return DunningPolicy.objects.create(practice=practice, version=1, is_current=True, created_at=now,
                                                use_processor_retries=bool(no_payment_retry(practice)))
        return _leave_retries_to_processor(policy, practice=practice, now=now)


def _leave_retries_to_processor(policy: DunningPolicy, *, practice: Practice, now: datetime) -> DunningPolicy:
    """A practice whose processor takes no payment retry (it moved to one, keeping a policy that
    retries) gets a new version that leaves them to the processor, with a system audit row."""
    if policy.use_processor_retries or not no_payment_retry(practice):
        return policy
    DunningPolicy.objects.filter(pk=policy.pk).update(is_current=False)
    values = {**policy_values(policy), "use_processor_retries": True}
    new = DunningPolicy.objects.create(practice=practice, version=policy.version + 1, is_current=True,
                                       created_at=now, **values)
    write_audit(actor=Actor.system("dunning policy"), action="dunning_policy_updated", obj=new, now=now,
                detail={"version": new.version, "changed": ["use_processor_retries"],
                        "why": "the processor takes no payment retry"})
    return new


def plan_steps(case: DunningCase, policy: DunningPolicy) -> None:
    """Write a new case's steps (`planned_steps`)."""
    DunningStep.objects.bulk_create(planned_steps(case, policy))


def planned_steps(case: DunningCase, policy: DunningPolicy) -> list[DunningStep]:
    """A new case's steps, unsaved: at each offset a retry (after day 0, unless the decline is hard or
    the processor retries itself) and the offset's messages; the exhaustion at the end. The opening of
    one case and of a sweep's many write them alike."""
    steps = []
    channels = list(policy.step_channels) + ["none"] * len(policy.retry_offsets_days)
    for number, offset in enumerate(policy.retry_offsets_days):
        due = case.opened_at + timedelta(days=offset)
        if offset > 0 and not case.hard and not policy.use_processor_retries:
            steps.append(DunningStep(case=case, key=f"step{number}:retry", number=number, kind=StepKind.RETRY,
                                     due_at=due))
        if channels[number] in ("sms", "both"):
            steps.append(DunningStep(case=case, key=f"step{number}:sms", number=number, kind=StepKind.SMS, due_at=due))
        if channels[number] in ("email", "both"):
            steps.append(DunningStep(case=case, key=f"step{number}:email", number=number, kind=StepKind.EMAIL,
                                     due_at=due))
    steps.append(DunningStep(case=case, key="exhaust", number=len(policy.retry_offsets_days), kind=StepKind.EXHAUST,
                             due_at=case.opened_at + timedelta(days=policy.exhaust_offset_days)))
    return steps


def _check_template(name: str, text: str, *, forbidden: list[str], errors: dict[str, str]) -> None:
    if "{%" in text:
        errors[name] = "Template tags ({% … %}) are not allowed; use {{ first_name }}, {{ practice_name }}, {{ card_update_link }}."
        return
    unknown = sorted({v for v in _VAR.findall(text) if v not in TEMPLATE_VARIABLES})
    if unknown:
        errors[name] = f"Unknown placeholder(s): {', '.join(unknown)}. Allowed: {', '.join(TEMPLATE_VARIABLES)}."
        return
    try:
        Template(text).render(Context({v: "x" for v in TEMPLATE_VARIABLES}))
    except TemplateSyntaxError as exc:
        errors[name] = f"Template error: {exc}"
        return
    lowered = text.lower()
    clinical = [word for word in forbidden if word and word.lower() in lowered]
    if clinical:
        errors[name] = ("Messages must not name treatments or tiers (nothing clinical): "
                        f"remove {', '.join(sorted(set(clinical)))}.")


def validate_policy_values(*, practice: Practice, values: dict[str, Any]) -> dict[str, str]:
    """Field → message for every problem; empty when the values are valid."""
    errors: dict[str, str] = {}
    offsets = values.get("retry_offsets_days")
    if (not isinstance(offsets, list) or not offsets
            or not all(isinstance(o, int) and not isinstance(o, bool) and 0 <= o <= 60 for o in offsets)
            or offsets != sorted(set(offsets))):
        errors["retry_offsets_days"] = "Give whole days from 0 to 60, ascending, without repeats, e.g. 0, 3, 5, 7."
    channels = values.get("step_channels")
    if not isinstance(channels, list) or not all(c in StepChannels.values for c in channels):
        errors["step_channels"] = f"Each step is one of: {', '.join(StepChannels.values)}."
    elif isinstance(offsets, list) and len(channels) != len(offsets):
        errors["step_channels"] = f"Give one channel choice per retry offset ({len(offsets)})."
    no_retry = no_payment_retry(practice)
    if no_retry and not values.get("use_processor_retries"):
        errors["use_processor_retries"] = no_retry
    if values.get("exhausted_action") not in ExhaustedAction.values:
        errors["exhausted_action"] = f"Choose one of: {', '.join(ExhaustedAction.values)}."
    exhaust = values.get("exhaust_after_days")
    if exhaust is not None and (not isinstance(exhaust, int) or exhaust < 0 or exhaust > 90):
        errors["exhaust_after_days"] = "Give whole days from 0 to 90, or leave it blank."
    elif exhaust is not None and isinstance(offsets, list) and offsets and exhaust < max(offsets):
        errors["exhaust_after_days"] = "The case cannot be exhausted before its last step."
    if not (values.get("flag_text") or "").strip():
        errors["flag_text"] = "The chart flag needs a text."
    forbidden = list(Service.objects.filter(practice=practice).values_list("name", flat=True))
    forbidden += list(Tier.objects.filter(practice=practice).values_list("name", flat=True))
    for name in ("flag_text", "sms_template", "email_subject_template", "email_body_template"):
        text = values.get(name) or ""
        if name != "flag_text" and not text.strip():
            errors[name] = "This template cannot be empty."
            continue
        _check_template(name, text, forbidden=forbidden, errors=errors)
    if "card_update_link" not in (values.get("sms_template") or "") and "sms_template" not in errors:
        errors["sms_template"] = "The SMS must carry {{ card_update_link }}."
    if "card_update_link" not in (values.get("email_body_template") or "") and "email_body_template" not in errors:
        errors["email_body_template"] = "The email must carry {{ card_update_link }}."
    return errors


def policy_values(policy: DunningPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in EDITABLE_FIELDS}


@transaction.atomic
def update_dunning_policy(*, practice: Practice, changes: dict[str, Any], actor: Actor,
                          now: datetime) -> DunningPolicy:
    """Save `changes` as the practice's next policy version, with its audit row (the actor carries the
    request's address). Raises InvalidPolicy (with `context["errors"]`, field → message) and changes
    nothing when a value is invalid; changes that change nothing save nothing and audit nothing."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidPolicy(f"Unknown policy field(s): {', '.join(sorted(unknown))}.")
    current = current_policy(practice=practice, now=now)
    current = DunningPolicy.objects.select_for_update().get(pk=current.pk)
    values = {**policy_values(current), **changes}
    errors = validate_policy_values(practice=practice, values=values)
    if errors:
        raise InvalidPolicy("; ".join(f"{k}: {v}" for k, v in errors.items()), errors=errors)
    if values == policy_values(current):
        return current
    DunningPolicy.objects.filter(pk=current.pk).update(is_current=False)
    policy = DunningPolicy.objects.create(practice=practice, version=current.version + 1, is_current=True,
                                          created_at=now, created_by=actor.user, **values)
    write_audit(actor=actor, action="dunning_policy_updated", obj=policy, now=now,
                detail={"version": policy.version, "changed": sorted(k for k in changes if changes[k] != getattr(current, k))})
    return policy
