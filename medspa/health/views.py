from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .selectors import check_health


@never_cache
@require_safe
def healthz(request):
    """For a load balancer or a monitor: no login, no member data, no audit row. 200 when the database
    answers and the worker's heartbeat is recent, else 503; the body says which part failed."""
    health = check_health(now=timezone.now())
    return JsonResponse(health.as_json(), status=200 if health.healthy else 503)
