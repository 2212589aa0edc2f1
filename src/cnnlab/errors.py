"""One exception type for mistakes a user can fix (the CLI prints its message on one line, without a traceback),
and the two checks that refuse a number with such a message."""

import math

MAX_SEED = 2**63 - 1  # seeds become torch's and numpy's 64-bit integers


class CnnlabError(Exception):
    """A problem with the user's input or environment; the message names the culprit and what to do."""


def whole(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number of at least `minimum` (and at most `maximum`), or a one-line error naming the value and the
    range: a bound far past any sensible value keeps an absurd one from overflowing or filling memory."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        accepted = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum:,}"
        raise CnnlabError(f"{name} {value!r}: must be a whole number, {accepted}")
    return value


def within(
    value, name: str, low: float, high: float, rule: str, low_open: bool = False, high_open: bool = False
) -> float:
    """A finite number in [low, high] (ends excluded when open), or a one-line error saying `rule`."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        raise CnnlabError(f"{name} {value!r}: must be {rule}")
    return float(value)
