"""The manager's policy form: lists as comma-separated text, checked by the policy service."""

from __future__ import annotations

from django import forms

from billing.models import DunningPolicy, ExhaustedAction

from .processor_retries import no_payment_retry


def _split(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class DunningPolicyForm(forms.Form):
    retry_offsets_days = forms.CharField(
        label="Steps (days after the failure)", max_length=100,
        help_text="e.g. 0, 3, 5, 7 — day 0 is the failed charge itself; each later day is a retry.")
    step_channels = forms.CharField(
        label="Messages at each step", max_length=200,
        help_text="One per step: sms, email, both or none — e.g. both, sms, email, both.")
    use_processor_retries = forms.BooleanField(
        required=False, label="Leave retries to the processor's smart retries (we only send the messages)")
    exhaust_after_days = forms.IntegerField(
        required=False, min_value=0, max_value=90, label="Give up after (days)",
        help_text="Blank: right after the last step.")
    exhausted_action = forms.ChoiceField(choices=ExhaustedAction.choices, label="When the payment is not recovered")
    flag_text = forms.CharField(max_length=200, label="Chart flag")
    sms_template = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="SMS",
                                   help_text="Placeholders: {{ first_name }}, {{ practice_name }}, {{ card_update_link }}.")
    email_subject_template = forms.CharField(max_length=200, label="Email subject")
    email_body_template = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), label="Email")

    @classmethod
    def for_policy(cls, policy: DunningPolicy, data=None) -> "DunningPolicyForm":
        initial = {
            "retry_offsets_days": ", ".join(str(o) for o in policy.retry_offsets_days),
            "step_channels": ", ".join(policy.step_channels),
            "use_processor_retries": policy.use_processor_retries,
            "exhaust_after_days": policy.exhaust_after_days,
            "exhausted_action": policy.exhausted_action,
            "flag_text": policy.flag_text,
            "sms_template": policy.sms_template,
            "email_subject_template": policy.email_subject_template,
            "email_body_template": policy.email_body_template,
        }
        form = cls(data=data, initial=initial)
        no_retry = no_payment_retry(policy.practice)
        if no_retry:      # the processor takes no payment retry: the box stays ticked, and says why
            field = form.fields["use_processor_retries"]
            field.disabled, field.help_text = True, no_retry
            form.initial["use_processor_retries"] = True
            form.fields["retry_offsets_days"].help_text = (
                "e.g. 0, 3, 5, 7 — day 0 is the failed charge; each later day sends that step's messages "
                "(we retry no payment at this processor: see below).")
        return form

    def clean_retry_offsets_days(self):
        parts = _split(self.cleaned_data["retry_offsets_days"])
        if not parts or not all(p.isdigit() for p in parts):
            raise forms.ValidationError("Give whole days separated by commas, e.g. 0, 3, 5, 7.")
        return [int(p) for p in parts]

    def clean_step_channels(self):
        return [p.lower() for p in _split(self.cleaned_data["step_channels"])]

    def changes(self) -> dict:
        return dict(self.cleaned_data)
