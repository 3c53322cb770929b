"""The mapper fields of every framework's `Config`: their defaults, and which the user set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

MAPPER_NAMES = ("get_path", "get_ip_address", "get_hostname", "get_user_agent", "get_user_id",
                "get_consumer")  # fmt: skip

RequestT = TypeVar("RequestT")
# Subscripted with the framework's request class (`Mapper[flask.Request]`), so that each
# `Config` says which request its mappers take.
Mapper = Callable[[RequestT], str | None]


def reads(
    attribute: str, key: str | None = None, then: Callable[[Any], Any] | None = None
) -> Callable[[Any], Any]:
    """A default mapper for a framework's `Config`: the request's `attribute` (dotted for a
    nested one, "url.host"), then its `.get(key)` when a key is given, then `then(value)`.

    No adapter calls a default mapper: `default_mappers` tells them by identity and the
    adapter reads the value inline. They are there for the user's own mappers to call.
    """
    get = attrgetter(attribute)

    def default_mapper(request: Any) -> Any:
        value = get(request)
        if key is not None:
            value = value.get(key)
        return value if then is None else then(value)

    # So that `repr(Config())` says what each default reads.
    read = f"request.{attribute}" + ("" if key is None else f".get({key!r})")
    name = read if then is None else f"{then.__name__}({read})"
    default_mapper.__name__ = default_mapper.__qualname__ = name
    return default_mapper


def no_user_id(request: Any) -> None:
    """The default `get_user_id` of every framework: the caller is not identified."""
    return None


def no_consumer(request: Any) -> None:
    """The default `get_consumer`: no named consumer (docs/capture.md `consumer`)."""
    return None


def default_mappers(config_class: type) -> dict[str, Callable]:
    """The default of each mapper field of a framework's `Config` class."""
    defaults = {f.name: f.default for f in fields(config_class) if f.name in MAPPER_NAMES}
    assert set(defaults) == set(MAPPER_NAMES), config_class
    return defaults


def custom_mappers(config: Any, defaults: dict[str, Callable], privacy: int) -> dict[str, Callable]:
    """The mappers the user replaced (the defaults are read inline by each adapter)."""
    custom = {}
    for name, default in defaults.items():
        mapper = getattr(config, name)
        if not callable(mapper):
            raise ValueError(f"{name} must be a function of the request")
        if mapper is not default:
            custom[name] = mapper
    if privacy == 2:
        custom.pop("get_ip_address", None)  # level 2 never calls the IP mapper
    return custom
