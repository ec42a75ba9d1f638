"""The API's errors: every answer that is not a success is JSON `{"code", "detail"}` (plus `fields`
for invalid fields), documented on every operation, and bad input is a 400, never a 500.

`refuse_bad_characters` is the one check every endpoint runs on its query parameters and body
(`LedgerApiView.initial`): a NUL byte, a lone surrogate or a control character is refused before
anything reaches the database (PostgreSQL refuses NUL in text, and neither database can store a
lone surrogate)."""

from __future__ import annotations

from typing import Any, Iterable

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from memberships.errors import LedgerError

# Tab, line feed and carriage return are ordinary in free text; every other C0 control, DEL, the C1
# controls and the surrogates (which no encoding can store alone) are refused.
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def is_bad_character(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20:
        return ch not in _ALLOWED_CONTROLS
    return 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF


def _bad_text(value: str) -> bool:
    return any(is_bad_character(ch) for ch in value)


class InvalidCharacters(APIException):
    status_code = 400
    default_code = "invalid_characters"
    default_detail = ("The request contains a character that is not allowed (a NUL byte, a control character "
                      "or a lone surrogate).")

    def __init__(self, where: Iterable[str]):
        super().__init__()
        self.where = sorted(set(where))


def _shown(text: str) -> str:
    """A field name fit to echo back: its bad characters replaced by U+FFFD."""
    return "".join("\ufffd" if is_bad_character(ch) else ch for ch in text)


def _bad_places(value: Any, path: str) -> list[str]:
    """Where in a parsed JSON body (dicts, lists, strings) a bad character sits, by field path (a bad
    character in a field's name is shown as U+FFFD)."""
    if isinstance(value, str):
        return [path or "body"] if _bad_text(value) else []
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{_shown(str(key))}" if path else _shown(str(key))
            found += [name or "body"] if isinstance(key, str) and _bad_text(key) else _bad_places(item, name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += _bad_places(item, f"{path}[{index}]")
    return found


def refuse_bad_characters(request) -> None:
    """Raise InvalidCharacters when a query parameter (name or value) or a body field holds a
    character no field of this API accepts."""
    where = []
    for name, values in request.query_params.lists():
        if _bad_text(name) or any(_bad_text(v) for v in values):
            where.append(_shown(name))
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            where += _bad_places(request.data, "")
        except RecursionError:
            raise drf_exceptions.ParseError("The JSON body is nested too deeply.") from None
    if where:
        raise InvalidCharacters(where)


class IdempotencyKeyRequired(APIException):
    status_code = 400
    default_code = "idempotency_key_required"
    default_detail = "Send an Idempotency-Key header: a unique key per request (1–150 visible ASCII characters)."


class IdempotencyKeyInvalid(APIException):
    status_code = 400
    default_code = "idempotency_key_invalid"
    default_detail = "The Idempotency-Key header must be 1–150 visible ASCII characters (letters, digits, punctuation)."


class InvalidCursor(APIException):
    status_code = 400
    default_code = "invalid_cursor"
    default_detail = "The cursor is not one this API gave out; start again without it."


def _body(code: str, detail: str, **extra) -> dict:
    return {"code": code, "detail": detail, **extra}


def exception_handler(exc, context):
    """Every error is JSON with a stable `code`: domain errors keep theirs, DRF's get one."""
    if isinstance(exc, LedgerError):
        return Response(_body(exc.code, exc.message), status=exc.http_status)
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, InvalidCharacters):
        response.data = _body(exc.default_code, str(exc.detail), fields={name: [str(exc.detail)] for name in exc.where})
    elif isinstance(exc, ValidationError):
        response.data = _body("invalid", "The request has invalid fields.", fields=response.data)
    elif isinstance(exc, (APIException, Http404)):
        code = exc.default_code if isinstance(exc, APIException) else "not_found"
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = _body(code, str(detail))
    return response


class ErrorOut(serializers.Serializer):
    """The body of every error answer."""

    code = serializers.CharField(help_text="Stable, machine-readable: e.g. invalid, invalid_characters, "
                                           "idempotency_key_required, not_found, insufficient_balance.")
    detail = serializers.CharField(help_text="A sentence for a person.")
    fields = serializers.DictField(
        child=serializers.JSONField(), required=False,
        help_text="For invalid fields (code `invalid`, `invalid_characters`): each field's problems.")


_MEANING = {
    400: "Invalid input: fields (`invalid`), a bad character (`invalid_characters`), a missing or bad "
         "Idempotency-Key (`idempotency_key_required`, `idempotency_key_invalid`), a bad cursor "
         "(`invalid_cursor`), unreadable JSON (`parse_error`), or a ledger rule (`reason_required`, "
         "`invalid_quantity`).",
    401: "No valid credentials (`not_authenticated`, `authentication_failed`).",
    403: "Not allowed for this user's role, or no practice linked (`permission_denied`, `not_allowed`); "
         "also sent instead of 401 when session authentication is tried first.",
    404: "No such object in this user's practice (`not_found`); a member, a membership and a redemption "
         "reach the other practices of its group too, never another group's.",
    409: "The ledger refuses now (`insufficient_balance`, `service_not_included`, `membership_not_redeemable`, "
         "`not_redeemable_here`, `stale_chart`, `illegal_transition`, `already_reversed`, `not_reversible`, "
         "`idempotency_key_reused`).",
    415: "The body is not JSON (`unsupported_media_type`).",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error answers an operation documents: 400, 401, 403 always, and the given ones."""
    wanted = sorted({400, 401, 403, *statuses})
    return {status: OpenApiResponse(ErrorOut, description=_MEANING[status]) for status in wanted}


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Any other address under /api/v1/ (an id that is not a number, a mistyped path): a JSON 404,
    like the API's own, not the staff pages' HTML one."""
    from django.http import JsonResponse

    return JsonResponse(_body("not_found", "There is nothing at this address of the API."), status=404)
