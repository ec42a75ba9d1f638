"""Exactly once per idempotency key: the two decorators every ledger service wears.

`@idempotent("change_tier")` — for a service whose result is a row (a membership, a member): an
`Operation` row claims the key in the same transaction as the work and records the result, so a
replay returns that row and changes nothing.

`@idempotent_entry(EntryKind.REDEEM)` — for a service whose result is one ledger entry written under
the key: the entry itself is the claim (the key's unique index), and a replay returns it.

A caller that must say whether anything happened (a staff page: "that was already done") calls
`service.outcome(...)` instead: the same call, answering `Outcome(result, replayed)`.

Both take the service's own keyword arguments: `idempotency_key` (or `key=` derives it from the
arguments), `now`, and the rest. A call:

1. runs `check(**arguments)` when given — arguments that are wrong whatever the key (a missing
   reason, a bad quantity, a permission) are refused before anything is read, replay or not;
2. returns the first result when the key was used before — and raises `IdempotencyKeyReused` when it
   was used by another service (or, for entries, for another kind of entry);
3. otherwise runs the service in one transaction (a savepoint inside the caller's). A concurrent
   twin with the same key that commits first makes this attempt fail on the key's unique index (or,
   for entries, find the balance already spent: a `LedgerError`); the attempt is rolled back and the
   twin's result is returned, as a replay would. Any other failure propagates."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from django.db import IntegrityError, transaction

from memberships.errors import IdempotencyKeyReused, LedgerError
from memberships.models import LedgerEntry, Member, Membership, Operation

ServiceFunction = TypeVar("ServiceFunction", bound=Callable[..., Any])

# What an Operation's result may be (its `result_model`).
_RESULT_MODELS = {"Membership": Membership, "LedgerEntry": LedgerEntry, "Member": Member}


@dataclass(frozen=True)
class Outcome:
    """What an idempotent call did: its result, and whether it was a replay (nothing changed)."""

    result: Any
    replayed: bool


def idempotent(name: str, *, key: Callable[..., str] | None = None,
               check: Callable[..., None] | None = None) -> Callable[[ServiceFunction], ServiceFunction]:
    """Run the decorated service at most once per key, recorded as an `Operation` named `name`."""

    def decorate(service: ServiceFunction) -> ServiceFunction:
        signature = inspect.signature(service)

        def outcome(*args, **kwargs) -> Outcome:
            arguments = _arguments(signature, args, kwargs)
            if check is not None:
                check(**arguments)
            idempotency_key = key(**arguments) if key is not None else arguments["idempotency_key"]
            done = Operation.objects.filter(idempotency_key=idempotency_key).first()
            if done is not None:
                return Outcome(_replay_operation(done, name=name), replayed=True)
            try:
                with transaction.atomic():
                    claim = Operation.objects.create(idempotency_key=idempotency_key, name=name, result_model="",
                                                     result_id=0, created_at=arguments["now"])
                    result = service(**arguments)
                    Operation.objects.filter(pk=claim.pk).update(result_model=type(result).__name__,
                                                                 result_id=result.pk)
                    return Outcome(result, replayed=False)
            except IntegrityError:
                done = Operation.objects.filter(idempotency_key=idempotency_key).first()
                if done is None:
                    raise
                return Outcome(_replay_operation(done, name=name), replayed=True)

        @functools.wraps(service)
        def once(*args, **kwargs):
            return outcome(*args, **kwargs).result

        once.outcome = outcome
        return once

    return decorate


def idempotent_entry(kind: str, *, key: Callable[..., str] | None = None, check: Callable[..., None] | None = None,
                     look_first: bool = True) -> Callable[[ServiceFunction], ServiceFunction]:
    """Run the decorated service, which writes one ledger entry of `kind` keyed by the idempotency
    key, at most once per key. `look_first=False` skips the replay lookup up front, for services whose
    only failures on a replay are a `LedgerError` or the key's unique index (a replay then costs a
    rolled-back attempt, the first call a query less)."""

    def decorate(service: ServiceFunction) -> ServiceFunction:
        signature = inspect.signature(service)

        def outcome(*args, **kwargs) -> Outcome:
            arguments = _arguments(signature, args, kwargs)
            if check is not None:
                check(**arguments)
            idempotency_key = key(**arguments) if key is not None else arguments["idempotency_key"]
            if look_first:
                existing = replay_entry(idempotency_key, kind=kind)
                if existing is not None:
                    return Outcome(existing, replayed=True)
            try:
                with transaction.atomic():
                    return Outcome(service(**arguments), replayed=False)
            except (IntegrityError, LedgerError):
                existing = replay_entry(idempotency_key, kind=kind)
                if existing is None:
                    raise
                return Outcome(existing, replayed=True)

        @functools.wraps(service)
        def once(*args, **kwargs):
            return outcome(*args, **kwargs).result

        once.outcome = outcome
        return once

    return decorate


def replay_entry(idempotency_key: str, *, kind: str | None = None) -> LedgerEntry | None:
    """The entry written under `idempotency_key`, if any (of another kind: IdempotencyKeyReused)."""
    entry = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if entry is not None and kind is not None and entry.kind != kind:
        raise IdempotencyKeyReused(idempotency_key=idempotency_key)
    return entry


def _replay_operation(operation: Operation, *, name: str):
    if operation.name != name:
        raise IdempotencyKeyReused(idempotency_key=operation.idempotency_key)
    return _RESULT_MODELS[operation.result_model].objects.get(pk=operation.result_id)


def _arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, defaults included (a positional or missing one: TypeError)."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments
