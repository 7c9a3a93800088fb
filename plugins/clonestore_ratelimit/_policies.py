"""What the rate limiter decides and the policies it applies."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from clonestore import ConfigurationError, ValidationError
from clonestore.schema import check
from clonestore.spi import Column

__all__ = [
    "ALGORITHMS",
    "DEFAULT_TIERS",
    "Decision",
    "EndpointUsage",
    "Policy",
    "Usage",
    "check_name",
    "parse_enforce",
    "parse_tiers",
]

#: The algorithms a check may use.
ALGORITHMS: Final = ("fixed_window", "sliding_window", "token_bucket")
MAX_NAME_LENGTH: Final = 200


@attrs.frozen(kw_only=True)
class Decision:
    """The answer to one check.

    ``allowed``: the call may proceed. ``remaining``: how many more calls the
    policy admits now. ``reset_at``: when the quota is next replenished (the end
    of the window; for a token bucket, when it is full again). ``retry_after``:
    seconds until a refused call may succeed (0 when allowed). ``limit``: the
    policy's limit.
    """

    allowed: bool
    remaining: int
    reset_at: datetime
    retry_after: float
    limit: int


#: The largest limit a policy takes (a trillion calls; counters stay far inside 64 bits).
MAX_LIMIT: Final = 10**12
#: The longest window a policy takes: 100 years (its end stays a datetime, its
#: microseconds a 64-bit integer).
MAX_WINDOW_SECONDS: Final = 100 * 366 * 86_400


def _bounded(minimum: int, maximum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or not minimum <= value <= maximum:
            raise ValidationError(
                f"must be an integer from {minimum} to {maximum}, got {value!r}",
                field=attribute.name,
            )

    return check


def _algorithm(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ALGORITHMS:
        raise ValidationError(
            f"must be one of {', '.join(ALGORITHMS)}; got {value!r}", field="algorithm"
        )


@attrs.frozen
class Policy:
    """At most ``limit`` calls per ``window_seconds``, counted by ``algorithm``.

    For ``token_bucket``, ``limit`` is the bucket's capacity (the largest
    burst) and the bucket refills completely in ``window_seconds``.
    """

    limit: int = attrs.field(validator=_bounded(0, MAX_LIMIT))
    window_seconds: int = attrs.field(validator=_bounded(1, MAX_WINDOW_SECONDS))
    algorithm: str = attrs.field(default="fixed_window", validator=_algorithm)

    def __attrs_post_init__(self) -> None:
        if self.algorithm == "token_bucket" and self.limit < 1:
            raise ValidationError("a token bucket holds at least one token", field="limit")


#: Policies per subscription tier when none are configured: ``"*"`` applies to
#: every endpoint without a policy of its own.
DEFAULT_TIERS: Final[Mapping[str, Mapping[str, Policy]]] = {
    "free": {"*": Policy(60, 60)},
    "pro": {"*": Policy(600, 60)},
    "enterprise": {"*": Policy(6000, 60)},
}


def _policy(value: Any, where: str) -> Policy:
    if isinstance(value, Policy):
        return value
    if isinstance(value, Mapping):
        try:
            return Policy(**value)
        except TypeError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
    if isinstance(value, (tuple, list)):
        return Policy(*value)
    raise ConfigurationError(
        f"{where}: a policy is a Policy, a mapping or a (limit, window_seconds[, algorithm]) "
        f"tuple, got {type(value).__name__}"
    )


def parse_tiers(tiers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Policy]]:
    """Policies by tier and endpoint, from ``Policy`` objects, mappings or tuples."""
    if not isinstance(tiers, Mapping):
        raise ConfigurationError("tiers must map a tier name to {endpoint: policy}")
    out: dict[str, dict[str, Policy]] = {}
    for tier, endpoints in tiers.items():
        if not isinstance(endpoints, Mapping):
            raise ConfigurationError(f"tier {tier!r} must map endpoint names to policies")
        out[str(tier)] = {
            str(name): _policy(value, f"tier {tier!r}, endpoint {name!r}")
            for name, value in endpoints.items()
        }
    return out


def parse_enforce(enforce: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """``{action pattern: endpoint}`` as an ordered tuple (first match wins)."""
    if enforce is None:
        return ()
    if not isinstance(enforce, Mapping):
        raise ConfigurationError("enforce must map action patterns ('document.*') to endpoints")
    return tuple((str(pattern), check_name("endpoint", e)) for pattern, e in enforce.items())


_KNOWN_NAMES: set[str] = set()


@functools.cache
def _name_column(field: str) -> Column:
    return Column(name=field, kind="text", max_length=MAX_NAME_LENGTH, min_length=1)


def check_name(field: str, value: Any) -> str:
    """A user id or endpoint name: non-empty text that every backend stores."""
    if type(value) is str and value in _KNOWN_NAMES:
        return value
    name = str(check(_name_column(field), value))  # the core's text rules
    if len(_KNOWN_NAMES) >= 10_000:
        _KNOWN_NAMES.clear()
    _KNOWN_NAMES.add(name)  # names recur: validate each once
    return name


@attrs.frozen(kw_only=True)
class EndpointUsage:
    """Calls to one endpoint over the stored windows and buckets."""

    endpoint: str
    requests: int
    admitted: int
    refused: int
    last_window_start: datetime | None


@attrs.frozen(kw_only=True)
class Usage:
    """A user's rate-limit statistics (over what ``cleanup`` has not removed yet)."""

    user_id: str
    requests: int
    admitted: int
    refused: int
    endpoints: dict[str, EndpointUsage]
