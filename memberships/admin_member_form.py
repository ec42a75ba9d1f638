"""The member's admin form: the mobile number kept as every other door keeps it."""

from __future__ import annotations

import phonenumbers
from django import forms

from .display import home_region


class MemberAdminForm(forms.ModelForm):
    """The mobile number kept as every other door keeps it (E.164, read in the practice's country):
    "send me a link", STOP replies and joining online look members up by it."""

    def clean_phone(self):
        raw = (self.cleaned_data.get("phone") or "").strip()
        if not raw:
            return ""
        try:
            number = phonenumbers.parse(raw, home_region())
        except phonenumbers.NumberParseException:
            raise forms.ValidationError("Enter a valid phone number.") from None
        if not phonenumbers.is_valid_number(number):
            raise forms.ValidationError("Enter a valid phone number.")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
