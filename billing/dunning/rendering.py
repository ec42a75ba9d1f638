"""Message bodies from the policy's templates: first name, practice name, card-update link. Nothing
else is in the context, so nothing clinical can reach a message."""

from __future__ import annotations

from functools import lru_cache

from django.template import Context, Template

from billing.models import DunningCase, DunningPolicy

from .links import card_update_link


@lru_cache(maxsize=256)
def _template(text: str) -> Template:
    """A policy's template, compiled once per text (policies are versioned: a text never changes
    under a version, and a sweep renders one text for many members)."""
    return Template(text)


def _render(text: str, context: dict[str, str]) -> str:
    return _template(text).render(Context(context, autoescape=False)).strip()


def message_context(case: DunningCase) -> dict[str, str]:
    return {
        "first_name": case.member.first_name,
        "practice_name": case.practice.name,
        "card_update_link": card_update_link(case.pk),
    }


def render_sms(policy: DunningPolicy, case: DunningCase) -> str:
    return _render(policy.sms_template, message_context(case))


def render_email(policy: DunningPolicy, case: DunningCase) -> tuple[str, str]:
    context = message_context(case)
    subject = " ".join(_render(policy.email_subject_template, context).split())
    return subject, _render(policy.email_body_template, context) + "\n"
