"""The join form: who is joining, which tier, the agreement accepted, optional SMS consent (its own
unticked box) and a honeypot field people never see."""

from __future__ import annotations

import phonenumbers
from django import forms

from memberships.display import home_region

SMS_CONSENT_TEXT = ("I agree to receive text messages from {practice} about my membership (payments, card "
                    "updates, credit about to expire). Message and data rates may apply. Reply STOP to opt out.")
HONEYPOT_FIELD = "website"


class JoinForm(forms.Form):
    tier = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect, label="Membership",
                                  error_messages={"required": "Choose a membership."})
    first_name = forms.CharField(label="First name", max_length=100)
    last_name = forms.CharField(label="Last name", max_length=100)
    email = forms.EmailField(label="Email", max_length=254)
    phone = forms.CharField(label="Mobile phone", max_length=30, help_text="e.g. (415) 555-0123")
    sms_consent = forms.BooleanField(required=False)
    agreement_version = forms.IntegerField(widget=forms.HiddenInput)
    accept_agreement = forms.BooleanField(
        label="I have read and accept the membership agreement",
        error_messages={"required": "Please accept the membership agreement to join."})
    # Hidden from people (CSS and aria-hidden); bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty",
                              widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}))

    def __init__(self, *args, tiers=(), sms_consent_text: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = [(t.pk, t.name) for t in tiers]
        self.fields["sms_consent"].label = sms_consent_text

    def is_bot(self) -> bool:
        return bool((self.data.get(HONEYPOT_FIELD) or "").strip())

    def clean_phone(self) -> str:
        raw = self.cleaned_data["phone"].strip()
        try:
            number = phonenumbers.parse(raw, home_region())      # the practice's country, as "send me a link"
        except phonenumbers.NumberParseException:
            raise forms.ValidationError("Enter a valid mobile number.") from None
        if not phonenumbers.is_valid_number(number):
            raise forms.ValidationError("Enter a valid mobile number.")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()
