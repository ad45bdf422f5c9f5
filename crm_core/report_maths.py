"""The arithmetic behind reports: percentiles, ABC (Pareto) and XYZ classes, the ABC/XYZ matrix.

Pure functions over plain values (stdlib only, no database): the reports fetch the figures,
these functions judge them. Money stays :class:`~decimal.Decimal` wherever a threshold is
compared, so a share of exactly 80 % is exactly 80 %.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from math import floor
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "ABC_CLASSES",
    "NO_CLASS",
    "XYZ_CLASSES",
    "Cell",
    "ParetoPoint",
    "XyzResult",
    "abc_classes",
    "abc_xyz_matrix",
    "median",
    "pareto_curve",
    "percentile",
    "xyz_class",
]

ABC_CLASSES = ("A", "B", "C")
XYZ_CLASSES = ("X", "Y", "Z")
NO_CLASS = "-"
TOO_FEW_MONTHS = "too few months"
NO_REVENUE = "no revenue"
_ZERO = Decimal(0)


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered | None)  # orderable keys; None ("no source") sorts last


# --- percentiles -----------------------------------------------------------------------------


def percentile(values: Iterable[float | Decimal], p: float) -> float | None:
    """The ``p``-th percentile (``0 <= p <= 100``) of ``values``; None for no values.

    Linear interpolation between the closest ranks, the same as numpy's default
    (``method="linear"``): with the values sorted as ``x[0] <= ... <= x[n-1]``,
    ``h = (n - 1) * p / 100`` and the answer is ``x[floor(h)] + (h - floor(h)) *
    (x[floor(h) + 1] - x[floor(h)])``. So p = 0 is the minimum, p = 100 the maximum and
    p = 50 the median. Decimals are read as floats.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"a percentile lies between 0 and 100, not {p!r}")
    ordered = sorted(float(value) for value in values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100
    low = floor(rank)
    if low + 1 >= len(ordered):
        return ordered[-1]
    return ordered[low] + (rank - low) * (ordered[low + 1] - ordered[low])


def median(values: Iterable[float | Decimal]) -> float | None:
    """The middle value (the mean of the middle two for an even count); None for no values."""
    return percentile(values, 50)


# --- ABC -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParetoPoint(Generic[K]):
    """One step of the Pareto curve: the ``rank``-th biggest item and the share of the total
    revenue that it and every bigger item bring together (0.0 to 1.0)."""

    rank: int
    key: K
    revenue: Decimal
    cumulative_share: float


def _key_order(key: K) -> tuple[bool, K]:
    """Keys ascending, a None key (such as "no source") last."""
    return (key is None, key)


def _ranked(revenue: Mapping[K, Decimal]) -> list[tuple[K, Decimal]]:
    """Items by revenue, biggest first; equal revenue ordered by key (None last)."""
    return sorted(revenue.items(), key=lambda item: (-item[1], _key_order(item[0])))


def abc_classes(
    revenue: Mapping[K, Decimal], a: float | Decimal = 0.80, b: float | Decimal = 0.95
) -> dict[K, str]:
    """The Pareto ABC class of every item.

    The rule: sort the items by revenue, biggest first (equal revenue: by key, ascending, a
    None key last).
    The total is the sum of the positive revenues. For each item take the cumulative share of
    the total held by the items BEFORE it: the item is

    * ``A`` while that share is below ``a`` (80 %), so the item that crosses 80 % is still A;
    * ``B`` while it is below ``b`` (95 %), so the item that crosses 95 % is still B;
    * ``C`` otherwise.

    An item with zero (or negative) revenue is always ``C``; all-zero revenue makes every item
    C. The comparison is exact (``Decimal``): a share of exactly 80 % before an item makes it B.
    """
    low, high = Decimal(str(a)), Decimal(str(b))
    if not 0 <= low <= high <= 1:
        raise ValueError(f"need 0 <= a <= b <= 1, not a={a!r}, b={b!r}")
    ranked = _ranked(revenue)
    total = sum((amount for _key, amount in ranked if amount > 0), _ZERO)
    classes: dict[K, str] = {}
    before = _ZERO
    for key, amount in ranked:
        if amount <= 0:
            classes[key] = "C"
            continue
        if before < low * total:
            classes[key] = "A"
        elif before < high * total:
            classes[key] = "B"
        else:
            classes[key] = "C"
        before += amount
    return classes


def pareto_curve(revenue: Mapping[K, Decimal]) -> tuple[ParetoPoint[K], ...]:
    """The Pareto curve for a chart, in the order :func:`abc_classes` ranks the items.

    ``cumulative_share`` counts the item itself (the last positive item reaches 1.0); items with
    zero or negative revenue add nothing, and with no positive revenue every share is 0.0.
    """
    ranked = _ranked(revenue)
    total = sum((amount for _key, amount in ranked if amount > 0), _ZERO)
    points: list[ParetoPoint[K]] = []
    running = _ZERO
    for rank, (key, amount) in enumerate(ranked, start=1):
        running += max(amount, _ZERO)
        share = float(running / total) if total else 0.0
        points.append(ParetoPoint(rank, key, amount, share))
    return tuple(points)


# --- XYZ -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XyzResult:
    """The coefficient of variation and its class, or why there is none (``cls`` is None)."""

    cv: float | None
    cls: str | None
    reason: str | None


def xyz_class(
    monthly: Sequence[Decimal],
    x: float | Decimal = 0.10,
    y: float | Decimal = 0.25,
    min_months: int = 3,
) -> XyzResult:
    """How steady the monthly won revenue is.

    ``monthly`` holds the won revenue of each of the last N months, oldest first, a month
    without revenue given as 0 (it counts). The coefficient of variation is the POPULATION
    standard deviation (the squared deviations divided by n, not n - 1) over the mean:

    * ``X`` if cv <= ``x`` (10 %), ``Y`` if cv <= ``y`` (25 %), ``Z`` above;
    * fewer than ``min_months`` months: no class, reason ``"too few months"``;
    * a mean of 0 (or below, after refunds): no class, reason ``"no revenue"``.
    """
    if len(monthly) < min_months or not monthly:
        return XyzResult(None, None, TOO_FEW_MONTHS)
    count = Decimal(len(monthly))
    mean = sum(monthly, _ZERO) / count
    if mean <= 0:
        return XyzResult(None, None, NO_REVENUE)
    variance = sum(((value - mean) ** 2 for value in monthly), _ZERO) / count
    cv = variance.sqrt() / mean
    if cv <= Decimal(str(x)):
        cls = "X"
    elif cv <= Decimal(str(y)):
        cls = "Y"
    else:
        cls = "Z"
    return XyzResult(float(cv), cls, None)


# --- the ABC/XYZ matrix ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell(Generic[K]):
    """One cell of the ABC/XYZ matrix: how many items, their revenue, which ones (sorted)."""

    count: int
    revenue: Decimal
    keys: tuple[K, ...]


def abc_xyz_matrix(
    abc: Mapping[K, str], xyz: Mapping[K, XyzResult], revenue: Mapping[K, Decimal]
) -> dict[str, dict[str, Cell[K]]]:
    """The 3x3 ABC/XYZ matrix, ``matrix[abc_class][xyz_class]``, always complete.

    Rows are ``A``, ``B``, ``C`` and ``"-"``; columns ``X``, ``Y``, ``Z`` and ``"-"``. An item
    whose XYZ class is None (too few months, no revenue) or missing lands in column ``"-"``; an
    item without an ABC class lands in row ``"-"``. Every key of ``abc`` or ``xyz`` is placed
    once; its revenue is taken from ``revenue`` (0 when absent).
    """
    members: dict[str, dict[str, list[K]]] = {
        row: {column: [] for column in (*XYZ_CLASSES, NO_CLASS)} for row in (*ABC_CLASSES, NO_CLASS)
    }
    for key in sorted({*abc, *xyz}, key=_key_order):
        row = abc.get(key, NO_CLASS)
        result = xyz.get(key)
        column = result.cls if result is not None and result.cls is not None else NO_CLASS
        if row not in members or column not in members[row]:
            raise ValueError(f"unknown class {row!r}/{column!r} for {key!r}")
        members[row][column].append(key)
    return {
        row: {
            column: Cell(
                len(keys), sum((revenue.get(key, _ZERO) for key in keys), _ZERO), tuple(keys)
            )
            for column, keys in columns.items()
        }
        for row, columns in members.items()
    }
