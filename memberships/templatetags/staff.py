from django import template

from memberships.display import format_money, format_phone

register = template.Library()


@register.filter
def money(value, currency="usd"):
    """Integer cents as money, the one way every page shows an amount: 19900 -> $199.00;
    `{{ cents|money:currency }}` for another currency."""
    return format_money(value, currency)


# The filter's older name: the same function, so an amount reads the same on every page.
register.filter("cents", money)


@register.filter
def phone(value):
    """A stored E.164 number as people write it: +16265550005 -> (626) 555-0005 at a US practice,
    other countries in international format."""
    return format_phone(value)


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def stage_allows(subject, stage):
    """Whether the automation stage is `stage` or later: `{% if practice|stage_allows:"dunning" %}` for
    the practice's, `{% if membership|stage_allows:"dunning" %}` (or a member) for the member's home
    location's (else the practice's; an `effective_stage` annotation is read when present)."""
    from memberships.models import Member, Membership
    from memberships.services.stages import at_least, stage_at_least_for

    if not subject:
        return False
    annotated = getattr(subject, "effective_stage", None)
    if annotated:
        return at_least(annotated, stage)
    if isinstance(subject, (Member, Membership)):
        return stage_at_least_for(subject, stage)
    return subject.stage_at_least(stage)


# Timeline kinds whose stored label is the back office's word ("dunning"), in the front desk's.
_EVENT_WORDS = {
    "dunning_opened": "Payment follow-up started",
    "dunning_closed": "Payment follow-up ended",
    "dunning": "Payment follow-up",
}


@register.filter
def event_label(event):
    """What a timeline event is, in a front desk's words: a retry or reminder that automation held
    back reads "not made" / "not sent", not "requested" / "queued"."""
    if (event.payload or {}).get("shadowed"):
        if event.kind == "dunning_retry":
            return "Payment retry not made"
        if event.kind == "dunning_message":
            return "Reminder not sent"
    return _EVENT_WORDS.get(event.kind) or event.get_kind_display()


@register.filter
def words(code):
    """A code as words for a page: "price_mismatch" -> "price mismatch", "payment_retry" -> "payment retry"."""
    return str(code or "").replace("_", " ").replace("-", " ")
