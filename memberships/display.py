"""How a phone number and an amount of money read on a page, in a message or on the timeline: one
way everywhere (the templates' `phone` and `money` filters call these).

- A phone is stored as E.164 (`+16265550005`). A number of the practice's own country reads as
  people there write it, "(626) 555-0005"; any other in international format, "+44 20 7946 0958".
  Text that is not a phone number is shown as it was given.
- Money is integer cents plus a currency: "$199.00" for dollars, "-$5.00" below zero; another
  currency by its symbol where one is unambiguous ("€12.50"), else by its code ("CHF 12.50")."""

from __future__ import annotations

import re
from decimal import Decimal

import phonenumbers
from django.conf import settings

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$", "nzd": "NZ$", "mxn": "MX$",
            "jpy": "¥"}
_NO_DECIMALS = {"jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof", "pyg", "rwf"}


# A North American number in E.164 (area code and exchange not starting 0 or 1), and the regions
# sharing its country code, where it reads "(626) 555-0005".
_NANP = re.compile(r"\+1[2-9]\d\d[2-9]\d{6}")
_NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(1))


def home_region() -> str:
    """The practice's country for phone numbers written without a country code (IMPORT_PHONE_REGION)."""
    return getattr(settings, "IMPORT_PHONE_REGION", "") or "US"


def format_phone(value, *, region: str | None = None) -> str:
    """`+16265550005` -> "(626) 555-0005" at a US practice; `+442079460958` -> "+44 20 7946 0958"."""
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    region = (region or home_region()).upper()
    if _NANP.fullmatch(text) and region in _NANP_REGIONS:
        # the common case, a North American number at a North American practice, written as the
        # library writes it without parsing (a page of results formats 25 of them)
        return f"({text[2:5]}) {text[5:8]}-{text[8:]}"
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(number):
        return text
    home_code = phonenumbers.country_code_for_region(region)
    style = (phonenumbers.PhoneNumberFormat.NATIONAL if number.country_code == home_code
             else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(number, style)


def format_money(cents, currency: str = "usd") -> str:
    """Integer cents (minor units) as an amount: 19900 -> "$199.00", -500 -> "-$5.00"."""
    if cents is None or cents == "":
        return ""
    cents = int(cents)
    code = (currency or "usd").lower()
    sign = "-" if cents < 0 else ""
    if code in _NO_DECIMALS:
        amount = f"{abs(cents):,}"
    else:
        amount = f"{Decimal(abs(cents)) / 100:,.2f}"
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{code.upper()} {amount}"
