"""Forms of the member page: they validate input; the services decide what is allowed."""

from __future__ import annotations

from django import forms

from memberships.forms import TokenForm
from memberships.models import MemberRequestKind, MemberRequestReason


class LinkForm(forms.Form):
    address = forms.CharField(label="Email or mobile number", max_length=254,
                              widget=forms.TextInput(attrs={"autocomplete": "email", "inputmode": "email",
                                                            "autofocus": True}))


class RequestForm(TokenForm):
    """A pause or cancellation request; its form token (`TokenForm`) is the request's idempotency key."""

    kind = forms.ChoiceField(choices=MemberRequestKind.choices, widget=forms.HiddenInput)
    reason = forms.ChoiceField(label="Why?", choices=[("", "Choose a reason")] + MemberRequestReason.choices)
    note = forms.CharField(label="Anything to add (optional)", max_length=500, required=False,
                           widget=forms.Textarea(attrs={"rows": 3}))
    pause_until = forms.DateField(label="Pause until", required=False,
                                  widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("kind") == MemberRequestKind.PAUSE and not data.get("pause_until"):
            self.add_error("pause_until", "Choose the date the pause ends.")
        return data
