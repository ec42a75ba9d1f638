"""Forms of the member page: they validate input; the services decide what is allowed."""

from __future__ import annotations

from django import forms

from memberships.models import MemberRequestKind, MemberRequestReason


class LinkForm(forms.Form):
    address = forms.CharField(label="Email or mobile number", max_length=254,
                              widget=forms.TextInput(attrs={"autocomplete": "email", "inputmode": "email",
                                                            "autofocus": True}))


class RequestForm(forms.Form):
    kind = forms.ChoiceField(choices=MemberRequestKind.choices, widget=forms.HiddenInput)
    reason = forms.ChoiceField(label="Why?", choices=[("", "Choose a reason")] + MemberRequestReason.choices)
    note = forms.CharField(label="Anything to add (optional)", max_length=500, required=False,
                           widget=forms.Textarea(attrs={"rows": 3}))
    pause_until = forms.DateField(label="Pause until", required=False,
                                  widget=forms.DateInput(attrs={"type": "date"}))
    token = forms.CharField(widget=forms.HiddenInput, max_length=32, min_length=32)

    def clean_token(self):
        token = self.cleaned_data["token"]
        if any(ch not in "0123456789abcdef" for ch in token):
            raise forms.ValidationError("This form has expired; reload the page.")
        return token

    def clean(self):
        data = super().clean()
        if data.get("kind") == MemberRequestKind.PAUSE and not data.get("pause_until"):
            self.add_error("pause_until", "Choose the date the pause ends.")
        return data
