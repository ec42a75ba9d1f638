"""The manager's pages: dashboard and dunning queue."""

from django.shortcuts import render

from memberships.views.common import staff_page


@staff_page("view_dashboard")
def dashboard(request):
    return render(request, "billing/dashboard.html", {})


@staff_page("view_dashboard")
def dunning(request):
    return render(request, "billing/dunning.html", {})


@staff_page("view_dashboard")
def mark_contacted(request, membership_id):
    return render(request, "billing/dunning.html", {})


@staff_page("view_dashboard")
def resend_card_link(request, membership_id):
    return render(request, "billing/dunning.html", {})
