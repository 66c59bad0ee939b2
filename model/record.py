"""Frozen value classes without `dataclasses`, for a fast start of `maildir-deliver`.

Owns `Record`, the base of the value classes on the delivery path (syscalls, outcomes,
`NameParts`, `Steps`), and `replace`. It exists because `@dataclass(frozen=True)` exec()s
source for each generated method (10.9 ms for model/syscalls.py) and `import dataclasses`
pulls in `inspect` (7.8 ms), paid by every delivery (issue 5, docs/performance.md). Fields
are declared as in a frozen dataclass; a subclass gets `__init__`, `==`, `hash`, a dataclass
`repr`, `__match_args__` (its fields, in order) and no assignment; no `field()`, ordering or
`__post_init__`. An instance's `__dict__` is exactly its fields, in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform


class FrozenInstanceError(AttributeError):
    """Assignment to (or deletion of) a field of a record, as in a frozen dataclass."""


class _Signature:
    """`inspect.signature(cls)`, built when asked (CrossHair builds `NameParts` from it)."""

    def __get__(self, record: object, cls: type[Record]) -> Any:
        from inspect import Parameter, Signature
        from typing import get_type_hints

        hints, kind = get_type_hints(cls), Parameter.POSITIONAL_OR_KEYWORD
        defaults = {n: cls._defaults.get(n, Parameter.empty) for n in cls.__match_args__}
        return Signature(
            [Parameter(n, kind, default=d, annotation=hints[n]) for n, d in defaults.items()]
        )


@dataclass_transform(frozen_default=True)
class Record:
    __signature__ = _Signature()
    if TYPE_CHECKING:
        __match_args__: ClassVar[tuple[str, ...]] = ()
        _defaults: ClassVar[dict[str, Any]] = {}
    else:  # unannotated: tools resolve a subclass's annotations with builtins only (CrossHair)
        __match_args__, _defaults = (), {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names, defaults = list(cls.__match_args__), dict(cls._defaults)  # inherited first
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect costs 6 ms)
        for name, annotation in own.items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
            if name not in names:
                names.append(name)
        cls.__match_args__ = tuple(names)  # type: ignore[misc]  # mypy: read-only; not here
        cls._defaults = defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fast = not kwargs and len(args) == len(self.__match_args__)  # all fields, in order
        values = args if fast else _arguments(type(self), args, kwargs)
        self.__dict__.update(zip(self.__match_args__, values, strict=True))

    def __eq__(self, other: object) -> bool:
        return self.__dict__ == other.__dict__ if type(other) is type(self) else NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__.values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__qualname__}({fields})"

    if not TYPE_CHECKING:  # hidden from type checkers, which would then allow any assignment

        def __setattr__(self, name: str, value: object) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r}")


def _arguments(cls: type[Record], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The field values, in order, from a call's arguments (or the TypeError a def raises)."""
    names, what, values, missing = cls.__match_args__, f"{cls.__qualname__}()", list(args), []
    if len(args) > len(names):
        raise TypeError(f"{what} takes {len(names)} arguments but {len(args)} were given")
    for name in names[len(args) :]:
        if name in kwargs or name in cls._defaults:
            values.append(kwargs.pop(name) if name in kwargs else cls._defaults[name])
        else:
            missing.append(repr(name))
    for name in kwargs:  # left over: given twice, or not a field
        problem = "multiple values for" if name in names else "an unexpected keyword"
        raise TypeError(f"{what} got {problem} argument {name!r}")
    if missing:
        raise TypeError(f"{what} missing required argument(s): {', '.join(missing)}")
    return values


_R = TypeVar("_R", bound=Record)  # not bound="Record": that string is compile()d, ~1 ms


def replace(record: _R, /, **changes: Any) -> _R:
    """A copy of `record` with `changes` to its fields (as `dataclasses.replace`)."""
    return type(record)(**{**record.__dict__, **changes})
