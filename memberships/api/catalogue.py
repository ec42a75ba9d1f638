"""What the practice sells, read only: its tiers (with their benefits and rollover rules) and services."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from memberships.models import Service, Tier, TierBenefit

from .base import LedgerApiView, LedgerListView
from .errors import error_responses
from .serializers import CatalogueFilterIn, ServiceFilterIn, ServiceOut, TierOut


def _tiers():
    return Tier.objects.prefetch_related(Prefetch("benefits", TierBenefit.objects.select_related("service")
                                                  .order_by("service__name", "id")))


class TierListApi(LedgerListView):
    """The practice's tiers (every version), with their benefits and rollover rules."""

    serializer_class = TierOut
    filters = CatalogueFilterIn

    def get_queryset(self):
        tiers = self.scoped(_tiers(), "practice_id")
        active = self.filter_values().get("active")
        return tiers if active is None else tiers.filter(active=active)

    @extend_schema(operation_id="tiers_list", parameters=[CatalogueFilterIn],
                   responses={200: TierOut(many=True), **error_responses()})
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)


class TierDetailApi(LedgerApiView):
    """A tier with its benefits and rollover rules."""

    @extend_schema(operation_id="tiers_retrieve", responses={200: TierOut, **error_responses(404)})
    def get(self, request, pk: int):
        return Response(TierOut(get_object_or_404(self.scoped(_tiers(), "practice_id"), pk=pk)).data)


class ServiceListApi(LedgerListView):
    """The practice's services: treatments (counted in units) and dollar credits (in cents)."""

    serializer_class = ServiceOut
    filters = ServiceFilterIn

    def get_queryset(self):
        wanted = self.filter_values()
        found = self.scoped(Service.objects.all(), "practice_id")
        if wanted.get("active") is not None:
            found = found.filter(active=wanted["active"])
        return found.filter(kind=wanted["kind"]) if wanted.get("kind") else found

    @extend_schema(operation_id="services_list", parameters=[ServiceFilterIn],
                   responses={200: ServiceOut(many=True), **error_responses()})
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)


class ServiceDetailApi(LedgerApiView):
    """A service."""

    @extend_schema(operation_id="services_retrieve", responses={200: ServiceOut, **error_responses(404)})
    def get(self, request, pk: int):
        return Response(ServiceOut(get_object_or_404(self.scoped(Service.objects.all(), "practice_id"), pk=pk)).data)
