"""Forms of the staff pages. They validate input; the services decide what is allowed."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import phonenumbers
from django import forms

from .display import home_region
from .models import ServiceKind, Tier
from .selectors import BalanceLine


# The most a redeem form accepts, in units or dollars: far above any visit, far below overflow.
MAX_FORM_AMOUNT = Decimal(1_000_000)

class SearchForm(forms.Form):
    q = forms.CharField(label="Name, phone, email or member number", max_length=100, required=False,
                        widget=forms.TextInput(attrs={"type": "search", "autofocus": True, "autocomplete": "off",
                                                      "placeholder": "Name, phone, email or member number"}))


class TokenForm(forms.Form):
    """A form token, rendered into the form, becomes the idempotency key: a double click or a
    resubmitted form is the same request."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=32, min_length=32)

    def clean_token(self):
        token = self.cleaned_data["token"]
        if any(ch not in "0123456789abcdef" for ch in token):
            raise forms.ValidationError("This form has expired; reload the page.")
        return token


# What the redeem form's quantity is counted in, by the kind of benefit chosen.
QUANTITY_HELP = {
    ServiceKind.TREATMENT: "Number of treatments (a whole number).",
    ServiceKind.CREDIT: "Dollar amount, e.g. 25.00.",
}


class ServiceSelect(forms.Select):
    """Each option carries the help its quantity needs (`data-help`), so the page's script can keep
    the help under Quantity in step with the benefit chosen."""

    option_help: dict[str, str] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        help_text = self.option_help.get(str(value))
        if help_text:
            option["attrs"]["data-help"] = help_text
        return option


class RedeemForm(TokenForm):
    service = forms.TypedChoiceField(label="Service", coerce=int,
                                     widget=ServiceSelect(attrs={"data-help-target": "id_quantity_help"}))
    quantity = forms.CharField(label="Quantity", initial="1", max_length=12,
                               widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 6,
                                                             "aria-describedby": "id_quantity_help"}))
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args, balances: list[BalanceLine], **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = {line.service_id: line for line in balances}
        offered = [line for line in balances if not line.frozen or line.available > 0]
        self.fields["service"].choices = [
            (line.service_id, f"{line.service_name} — {line.available_display} available") for line in offered]
        self.fields["service"].widget.option_help = {
            str(line.service_id): QUANTITY_HELP.get(line.service_kind, "") for line in offered}
        self.fields["quantity"].help_text = self._quantity_help(offered)

    def _quantity_help(self, offered: list[BalanceLine]) -> str:
        """The help for the benefit the form shows chosen: the one posted, else the initial one, else the first."""
        chosen = self.data.get("service") if self.is_bound else self.initial.get("service")
        line = next((line for line in offered if str(line.service_id) == str(chosen)), None)
        line = line or (offered[0] if offered else None)
        return QUANTITY_HELP.get(line.service_kind, "") if line else ""

    def clean(self):
        data = super().clean()
        line = self.lines.get(data.get("service"))
        raw = (data.get("quantity") or "").strip().lstrip("$")
        if line is None or not raw:
            return data
        try:
            amount = Decimal(raw.replace(",", ""))
        except (InvalidOperation, ValueError):
            amount = None
        # "Infinity", "NaN" and 1e999999 are Decimals too, but not amounts anyone means.
        if amount is None or not amount.is_finite() or abs(amount) > MAX_FORM_AMOUNT:
            self.add_error("quantity", "Enter a number.")
            return data
        if line.service_kind == ServiceKind.CREDIT:
            cents = amount * 100
            if cents != cents.to_integral_value() or cents <= 0:
                self.add_error("quantity", "Enter a dollar amount above zero with at most two decimals.")
                return data
            data["units"] = int(cents)
        else:
            if amount != amount.to_integral_value() or amount <= 0:
                self.add_error("quantity", "Enter a whole number of at least 1.")
                return data
            if amount > 100:
                self.add_error("quantity", "That is more than one visit can use; check the number.")
                return data
            data["units"] = int(amount)
        return data


class ReverseForm(TokenForm):
    reason = forms.CharField(label="Reason", max_length=300,
                             help_text="Shown on the member's timeline and in the audit log.")
    disputed = forms.BooleanField(label="The member disputes this redemption", required=False)


def _tier_choices(practice_id: int, *, exclude: int | None = None):
    tiers = Tier.objects.filter(practice_id=practice_id, active=True).order_by("rank", "name", "version")
    if exclude:
        tiers = tiers.exclude(pk=exclude)
    return [(t.pk, f"{t} — {t.price_display}") for t in tiers]


class EnrollForm(TokenForm):
    tier = forms.TypedChoiceField(label="Tier", coerce=int)

    def __init__(self, *args, practice_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = _tier_choices(practice_id)


class NewMemberForm(EnrollForm):
    first_name = forms.CharField(label="First name", max_length=100)
    last_name = forms.CharField(label="Last name", max_length=100)
    email = forms.EmailField(label="Email", required=False)
    phone = forms.CharField(label="Mobile phone", max_length=30, required=False,
                            help_text="For card-update texts, e.g. (415) 555-0123.")
    sms_consent = forms.BooleanField(label="The member agrees to receive text messages", required=False)

    field_order = ["first_name", "last_name", "email", "phone", "sms_consent", "tier", "token"]

    def clean_phone(self):
        raw = self.cleaned_data["phone"].strip()
        if not raw:
            return ""
        try:
            number = phonenumbers.parse(raw, home_region())       # the practice's country
        except phonenumbers.NumberParseException:
            raise forms.ValidationError("Enter a valid phone number.") from None
        if not phonenumbers.is_valid_number(number):
            raise forms.ValidationError("Enter a valid phone number.")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def clean(self):
        data = super().clean()
        if not data.get("email") and not data.get("phone"):
            raise forms.ValidationError("Give an email or a phone number, so the member can get the card link.")
        if data.get("sms_consent") and not data.get("phone"):
            self.add_error("phone", "Text-message consent needs a phone number.")
        return data


class ChangeTierForm(TokenForm):
    tier = forms.TypedChoiceField(label="New tier", coerce=int)
    effective = forms.ChoiceField(label="When", widget=forms.RadioSelect, initial="next_cycle", choices=[
        ("next_cycle", "At the next billing cycle"),
        ("now", "Now"),
    ])

    def __init__(self, *args, practice_id: int, current_tier_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = _tier_choices(practice_id, exclude=current_tier_id)


class PauseForm(TokenForm):
    until = forms.DateField(label="Paused until", widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(label="Reason (optional)", max_length=200, required=False)

    def __init__(self, *args, today, **kwargs):
        """`today`: the practice's date now (the service checks the same date)."""
        super().__init__(*args, **kwargs)
        self.today = today

    def clean_until(self):
        until = self.cleaned_data["until"]
        if until <= self.today:
            raise forms.ValidationError("Choose a date after today.")
        return until


class CancelForm(TokenForm):
    reason = forms.CharField(label="Reason", max_length=200,
                             help_text="E.g. moving away, price, not using it.")


class ConfirmOnlyForm(TokenForm):
    pass
