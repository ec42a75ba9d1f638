"""A strict check of a JSON body against the Square SDK's own pydantic models.

The SDK's models (`square.types.*`, squareup 46) accept unknown fields and any string where Square
lists enum values, so `model_validate` alone lets a wrong shape through. `check(model, data)` walks
the model's declared fields and refuses: a field the model does not declare, a value outside the
SDK's enum list (`Union[Literal[...], Any]`), a wrong JSON type, a missing required field, a catalog
object whose `type` names no arm of the SDK's union. Then the SDK's own `model_validate` must pass.
"""

from __future__ import annotations

import types
import typing

import pydantic

from square.core.unchecked_base_model import UnionMetadata


class ShapeError(AssertionError):
    """A body the SDK's models would not describe."""


_SCALARS = {str: str, int: int, float: (int, float), bool: bool}


def check(model: type[pydantic.BaseModel], data) -> None:
    """Raise ShapeError (an AssertionError) unless `data` is exactly a `model`."""
    _check(model, data, model.__name__)
    model.model_validate(data)


def _check(annotation, value, path: str) -> None:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is typing.Any:
        return
    if origin is typing.Annotated:
        if any(isinstance(meta, UnionMetadata) for meta in args[1:]):
            return _check_tagged(args[0], value, path, next(m for m in args[1:] if isinstance(m, UnionMetadata)))
        return _check(args[0], value, path)
    if origin in (typing.Union, types.UnionType):
        return _check_union(args, value, path)
    if origin is typing.Literal:
        if value not in args:
            raise ShapeError(f"{path}: {value!r} is not one of {list(args)}")
        return
    if origin in (list, typing.List, typing.Sequence, tuple):
        if not isinstance(value, list):
            raise ShapeError(f"{path}: expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check(args[0] if args else typing.Any, item, f"{path}[{i}]")
        return
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ShapeError(f"{path}: expected an object")
        for key, item in value.items():
            _check(args[1] if len(args) > 1 else typing.Any, item, f"{path}.{key}")
        return
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return _check_model(annotation, value, path)
    if annotation in _SCALARS:
        if not isinstance(value, _SCALARS[annotation]) or (annotation is int and isinstance(value, bool)):
            raise ShapeError(f"{path}: expected {annotation.__name__}, got {value!r}")
        return
    if isinstance(annotation, typing.ForwardRef) or isinstance(annotation, str):
        raise ShapeError(f"{path}: unresolved annotation {annotation!r}")


def _check_model(model: type[pydantic.BaseModel], value, path: str) -> None:
    if not isinstance(value, dict):
        raise ShapeError(f"{path}: expected an object for {model.__name__}")
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ShapeError(f"{path}: {model.__name__} declares no field {', '.join(unknown)}")
    for key, field in fields.items():
        if key not in value:
            if field.is_required():
                raise ShapeError(f"{path}: {model.__name__}.{key} is required")
            continue
        _check(field.annotation, value[key], f"{path}.{key}")


def _check_union(args, value, path: str) -> None:
    if value is None:
        if type(None) in args:
            return
        raise ShapeError(f"{path}: null where a value is required")
    arms = [a for a in args if a is not type(None)]
    literals = [a for a in arms if typing.get_origin(a) is typing.Literal]
    if literals and typing.Any in arms:          # the SDK's enum: Union[Literal[...], Any]
        allowed = [v for lit in literals for v in typing.get_args(lit)]
        if value not in allowed:
            raise ShapeError(f"{path}: {value!r} is not one of the SDK's values {allowed}")
        return
    errors = []
    for arm in arms:
        try:
            _check(arm, value, path)
            return
        except ShapeError as exc:
            errors.append(str(exc))
    raise ShapeError(f"{path}: matches no arm of the union: {'; '.join(errors)}")


def _check_tagged(union, value, path: str, meta: UnionMetadata) -> None:
    if not isinstance(value, dict):
        raise ShapeError(f"{path}: expected an object")
    tag = value.get(meta.discriminant)
    for arm in typing.get_args(union):
        literal = arm.model_fields[meta.discriminant].annotation
        if tag in typing.get_args(literal):
            return _check_model(arm, value, path)
    raise ShapeError(f"{path}: {meta.discriminant} {tag!r} names no arm of the SDK's union")
