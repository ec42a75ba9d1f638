"""The manager's dunning policy page: the current version, an edit form (saving makes a new version;
open cases keep theirs) and the version history."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone

from billing.models import DunningPolicy
from memberships.services import Actor
from memberships.views.common import client_ip, practice_for, staff_page

from .errors import InvalidPolicy
from .forms import DunningPolicyForm
from .policy import current_policy, update_dunning_policy


@staff_page("view_dashboard")
def policy_page(request):
    practice = practice_for(request.user)
    policy = current_policy(practice=practice, now=timezone.now())
    form = DunningPolicyForm.for_policy(policy, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            new = update_dunning_policy(practice=practice, changes=form.changes(),
                                        actor=Actor.staff(request.user, ip_address=client_ip(request)),
                                        now=timezone.now())
        except InvalidPolicy as exc:
            for field, message in exc.context.get("errors", {}).items():
                form.add_error(field if field in form.fields else None, message)
        else:
            if new.pk == policy.pk:
                messages.info(request, "Nothing changed.")
            else:
                messages.success(request, f"Saved as version {new.version}. Open cases keep the version they started under.")
            return redirect("dunning_policy")
    versions = DunningPolicy.objects.filter(practice=practice).select_related("created_by").order_by("-version")[:20]
    return render(request, "billing/dunning_policy.html", {"policy": policy, "form": form, "versions": versions})
