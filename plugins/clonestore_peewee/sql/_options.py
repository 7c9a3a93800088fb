"""Backend options, from keyword arguments to ``clonestore.open`` or the URL's query.

``clonestore.open("postgresql://.../db?pool_size=5", pool_timeout=3)``: URL
values are strings and are converted here; keyword arguments win over the
URL. An option the backend does not know is a :class:`ConfigurationError`
that lists the ones it does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from clonestore import ConfigurationError

__all__ = [
    "ROW_SECURITY_REFUSAL",
    "OptionSpec",
    "flag",
    "not_offered_row_security",
    "positive_float",
    "positive_int",
    "read_options",
    "text",
]

#: Option name -> (converter, default). Converters raise ValueError on bad input.
OptionSpec = Mapping[str, tuple[Callable[[Any], Any], Any]]


def positive_int(value: Any) -> int:
    """An integer >= 1 (``"5"`` accepted)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    number = int(value)
    if number != float(value) or number < 1:
        raise ValueError("expected an integer >= 1")
    return number


def positive_float(value: Any) -> float:
    """A number > 0, in seconds (``"2.5"`` accepted)."""
    if isinstance(value, bool):
        raise ValueError("expected a number")
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError("expected a finite number > 0")
    return number


def flag(value: Any) -> bool:
    """True or false (a bool, or 1/0, true/false, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                    "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError("expected true or false")


#: Why ``row_security`` is refused off PostgreSQL (the memory backend says it too).
ROW_SECURITY_REFUSAL = (
    "row-level security is a PostgreSQL capability (postgresql://...?row_security=on); "
    "this backend does not offer it"
)


def not_offered_row_security(value: Any) -> bool:
    """Option ``row_security`` on an engine without row-level security: ``off`` only."""
    if flag(value):
        raise ValueError(ROW_SECURITY_REFUSAL)
    return False


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def read_options(
    scheme: str, query: str, options: Mapping[str, Any], known: OptionSpec
) -> dict[str, Any]:
    """Validated options: defaults, then the URL's query, then keyword ``options``."""
    given: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    given.update(options)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown option{'s' if len(unknown) > 1 else ''} for {scheme}://: "
            f"{', '.join(unknown)}; known options: {', '.join(sorted(known))}"
        )
    out: dict[str, Any] = {}
    for name, (convert, default) in known.items():
        if name not in given or given[name] is None:
            out[name] = default
            continue
        try:
            out[name] = convert(given[name])
        except (TypeError, ValueError) as exc:
            shown = "***" if "password" in name else repr(given[name])
            raise ConfigurationError(f"option {name}={shown} for {scheme}://: {exc}") from None
    return out
