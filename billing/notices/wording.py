"""What a notice says. The practice's name, the amount and the date in the member's zone ("Jan 3"),
and the member page's sign-in address: never a tier or treatment name (the member page shows the
detail once they sign in), and the link grants nothing by itself — a notice read days later
points to "send me a link", not to a single-use link. SMS bodies stay within GSM-7 and, for a
practice name of usual length, one segment (160 characters)."""

from __future__ import annotations

import unicodedata
from datetime import date

from django.conf import settings
from django.urls import reverse

from memberships.display import format_money

from ..models import MemberNotice, NoticeKind


def member_page_url() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("portal:me:link")


def day(value: date) -> str:
    return f"{value:%b} {value.day}"


# GSM 03.38's basic character set: a name outside it would turn the text into several segments.
GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
           "¿abcdefghijklmnopqrstuvwxyzäöñüà")


def addressee(first_name: str, *, channel: str = "sms") -> str:
    """The member's first name for a message to a number or address a household shares. An email
    takes it as written. A text takes it within GSM-7, its accents dropped where that alone brings it
    there ("Zoë" → "Zoe", "Mónica" → "Monica"), else "" (too long, or "Łucja": several segments)."""
    name = (first_name or "").strip()
    if channel == "email":
        return name[:40]
    if not (set(name) <= GSM7):
        plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
        name = plain if set(plain) <= GSM7 else ""
    return name if name and len(name) <= 20 else ""


SMS_SEGMENT = 160


def sms_body(notice: MemberNotice, *, name: str = "") -> str:
    """`name`: the member's first name, when the number is shared with another member (a
    household), so each text says whose membership it is about — left out when the text would no
    longer fit one segment with it."""
    body = _sms_body(notice, name=name)
    return body if not name or len(body) <= SMS_SEGMENT else _sms_body(notice, name="")


def _sms_body(notice: MemberNotice, *, name: str) -> str:
    practice, when, link = notice.practice.name, day(notice.boundary_date), member_page_url()
    if notice.kind == NoticeKind.UPCOMING_CHARGE:
        amount = format_money(notice.amount_cents, notice.currency)
        whose = f"{name}'s" if name else "your"
        return f"{practice}: {whose} membership renews on {when} for {amount}. Details: {link} Reply STOP to opt out."
    who = f"{name} has" if name else "you have"
    return (f"{practice}: {who} membership benefits that expire on {when} - see them: {link} "
            "Reply STOP to opt out.")


def email_subject(notice: MemberNotice, *, name: str = "") -> str:
    """`name` as for `sms_body`, when the address is shared."""
    when, whose = day(notice.boundary_date), f"{name}'s " if name else ""
    if notice.kind == NoticeKind.UPCOMING_CHARGE:
        return f"{notice.practice.name}: {whose or 'your '}membership renews on {when}"
    return f"{notice.practice.name}: {whose}membership benefits that expire on {when}"


def email_body(notice: MemberNotice) -> str:
    practice, when, link = notice.practice.name, day(notice.boundary_date), member_page_url()
    hello = f"Hi {notice.member.first_name},\n\n" if notice.member.first_name else "Hello,\n\n"
    if notice.kind == NoticeKind.UPCOMING_CHARGE:
        amount = format_money(notice.amount_cents, notice.currency)
        text = (f"Your {practice} membership renews on {when}, and the card on file will be charged {amount}.\n\n"
                f"Your balances and the details of your membership are on your member page:\n\n{link}\n\n"
                "Sign in there with this email address; we send you a link that opens the page.\n")
    else:
        text = (f"You have {practice} membership benefits that expire on {when} if they are not used by then.\n\n"
                f"See which ones, and book before they expire, on your member page:\n\n{link}\n\n"
                "Sign in there with this email address; we send you a link that opens the page.\n")
    return f"{hello}{text}\nThank you,\n{practice}\n"


def timeline_label(kind: str) -> str:
    return "Upcoming-charge notice" if kind == NoticeKind.UPCOMING_CHARGE else "Expiring-credit notice"
