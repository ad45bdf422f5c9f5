"""Report arithmetic: percentiles, ABC, XYZ and their matrix; every figure worked out by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm_core.report_maths import (
    Cell,
    ParetoPoint,
    XyzResult,
    abc_classes,
    abc_xyz_matrix,
    median,
    pareto_curve,
    percentile,
    xyz_class,
)


def _d(*values: str) -> list[Decimal]:
    return [Decimal(value) for value in values]


# --- median and percentile -------------------------------------------------------------------


def test_median_of_odd_and_even_counts() -> None:
    assert median([3, 1, 2]) == 2.0  # sorted 1 2 3: the middle one
    assert median([4, 1, 3, 2]) == 2.5  # sorted 1 2 3 4: (2 + 3) / 2
    assert median([7]) == 7.0
    assert median(_d("1.5", "2.5")) == 2.0  # (1.5 + 2.5) / 2
    assert median([]) is None


def test_percentile_interpolates_linearly_between_ranks() -> None:
    # [1, 2, 3, 4], p25: h = (4 - 1) * 0.25 = 0.75 -> 1 + 0.75 * (2 - 1) = 1.75
    assert percentile([4, 3, 2, 1], 25) == 1.75
    # [10, 20, 30, 40, 50], p90: h = 4 * 0.9 = 3.6 -> 40 + 0.6 * (50 - 40) = 46
    assert percentile([10, 20, 30, 40, 50], 90) == pytest.approx(46.0)
    # p50 = median: h = 4 * 0.5 = 2 -> x[2] = 30
    assert percentile([10, 20, 30, 40, 50], 50) == 30.0
    # the ends are the minimum and the maximum
    assert percentile([5, 1, 9], 0) == 1.0
    assert percentile([5, 1, 9], 100) == 9.0
    # [1, 2], p10: h = 1 * 0.1 = 0.1 -> 1 + 0.1 * 1 = 1.1
    assert percentile([2, 1], 10) == pytest.approx(1.1)
    # repeated values: [1, 1, 1, 5], p75: h = 3 * 0.75 = 2.25 -> 1 + 0.25 * (5 - 1) = 2
    assert percentile([1, 1, 1, 5], 75) == 2.0
    assert percentile([], 90) is None


def test_percentile_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1, 2], 101)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1, 2], -1)


# --- ten clients -----------------------------------------------------------------------------

# Won revenue per month (thousands), the last four months, oldest first; c05 and c10 are new
# (two months of history). Totals: 400 + 250 + 200 + 60 + 50 + 20 + 10 + 10 + 0 + 0 = 1000.
MONTHLY: dict[str, list[Decimal]] = {
    "c01": _d("90", "110", "100", "100"),  # total 400
    "c02": _d("50", "75", "50", "75"),  # total 250
    "c03": _d("0", "100", "50", "50"),  # total 200
    "c04": _d("12", "18", "15", "15"),  # total 60
    "c05": _d("20", "30"),  # total 50
    "c06": _d("4.5", "5.5", "4.5", "5.5"),  # total 20
    "c07": _d("0", "0", "0", "10"),  # total 10
    "c08": _d("2", "3", "2", "3"),  # total 10
    "c09": _d("0", "0", "0", "0"),  # total 0
    "c10": _d("0", "0"),  # total 0
}
REVENUE = {client: sum(months, Decimal(0)) for client, months in MONTHLY.items()}


def test_the_totals() -> None:
    assert REVENUE == {
        "c01": 400, "c02": 250, "c03": 200, "c04": 60, "c05": 50,
        "c06": 20, "c07": 10, "c08": 10, "c09": 0, "c10": 0,
    }  # fmt: skip
    assert sum(REVENUE.values()) == 1000


def test_abc_classes_of_ten_clients() -> None:
    # rank client revenue  share before  -> class   cumulative after
    #  1   c01    400       0 %           A          40 %
    #  2   c02    250      40 %           A          65 %
    #  3   c03    200      65 %           A          85 %   (crosses 80 %: still A)
    #  4   c04     60      85 %           B          91 %
    #  5   c05     50      91 %           B          96 %   (crosses 95 %: still B)
    #  6   c06     20      96 %           C          98 %
    #  7   c07     10      98 %           C          99 %   (ties with c08: c07 first by key)
    #  8   c08     10      99 %           C         100 %
    #  9   c09      0     zero revenue    C         100 %
    # 10   c10      0     zero revenue    C         100 %
    assert abc_classes(REVENUE) == {
        "c01": "A", "c02": "A", "c03": "A", "c04": "B", "c05": "B",
        "c06": "C", "c07": "C", "c08": "C", "c09": "C", "c10": "C",
    }  # fmt: skip


def test_pareto_curve_of_ten_clients() -> None:
    curve = pareto_curve(REVENUE)
    assert [(p.rank, p.key, p.cumulative_share) for p in curve] == [
        (1, "c01", 0.40),  # 400 / 1000
        (2, "c02", 0.65),  # 650 / 1000
        (3, "c03", 0.85),  # 850 / 1000
        (4, "c04", 0.91),  # 910 / 1000
        (5, "c05", 0.96),  # 960 / 1000
        (6, "c06", 0.98),  # 980 / 1000
        (7, "c07", 0.99),  # 990 / 1000
        (8, "c08", 1.00),  # 1000 / 1000
        (9, "c09", 1.00),
        (10, "c10", 1.00),
    ]
    assert curve[0] == ParetoPoint(1, "c01", Decimal(400), 0.40)


def test_xyz_classes_of_ten_clients() -> None:
    results = {client: xyz_class(months) for client, months in MONTHLY.items()}
    cvs = {client: None if r.cv is None else round(r.cv, 4) for client, r in results.items()}
    # population std: sqrt(sum((v - mean)^2) / n); cv = std / mean
    assert cvs == {
        # mean 400/4 = 100; deviations -10, 10, 0, 0; var (100 + 100) / 4 = 50;
        # std sqrt(50) = 7.0711; cv 7.0711 / 100 = 0.0707 -> X
        "c01": 0.0707,
        # mean 250/4 = 62.5; deviations +-12.5; var 4 * 156.25 / 4 = 156.25; std 12.5;
        # cv 12.5 / 62.5 = 0.2 -> Y
        "c02": 0.2,
        # mean 200/4 = 50; deviations -50, 50, 0, 0; var 5000 / 4 = 1250; std 35.3553;
        # cv 35.3553 / 50 = 0.7071 -> Z
        "c03": 0.7071,
        # mean 60/4 = 15; deviations -3, 3, 0, 0; var 18 / 4 = 4.5; std 2.1213;
        # cv 2.1213 / 15 = 0.1414 -> Y
        "c04": 0.1414,
        "c05": None,  # two months < 3
        # mean 20/4 = 5; deviations +-0.5; var 4 * 0.25 / 4 = 0.25; std 0.5;
        # cv 0.5 / 5 = 0.1 exactly -> X (cv <= 10 %)
        "c06": 0.1,
        # mean 10/4 = 2.5; deviations -2.5 (x3), 7.5; var (3 * 6.25 + 56.25) / 4 = 75 / 4 = 18.75;
        # std 4.3301; cv 4.3301 / 2.5 = 1.7321 (= sqrt(3)) -> Z
        "c07": 1.7321,
        # mean 10/4 = 2.5; deviations +-0.5; var 0.25; std 0.5; cv 0.5 / 2.5 = 0.2 -> Y
        "c08": 0.2,
        "c09": None,  # four months of 0: mean 0
        "c10": None,  # two months < 3 (checked before the mean)
    }
    assert {client: r.cls for client, r in results.items()} == {
        "c01": "X", "c02": "Y", "c03": "Z", "c04": "Y", "c05": None,
        "c06": "X", "c07": "Z", "c08": "Y", "c09": None, "c10": None,
    }  # fmt: skip
    assert results["c05"] == XyzResult(None, None, "too few months")
    assert results["c09"] == XyzResult(None, None, "no revenue")
    assert results["c10"] == XyzResult(None, None, "too few months")


def test_abc_xyz_matrix_of_ten_clients() -> None:
    matrix = abc_xyz_matrix(
        abc_classes(REVENUE), {c: xyz_class(m) for c, m in MONTHLY.items()}, REVENUE
    )
    #        X            Y                 Z            -
    # A  c01 (400)    c02 (250)         c03 (200)        .
    # B      .        c04 (60)              .        c05 (50)
    # C  c06 (20)     c08 (10)          c07 (10)     c09, c10 (0)
    # -      .            .                 .            .
    counts = {row: {col: cell.count for col, cell in cols.items()} for row, cols in matrix.items()}
    assert counts == {
        "A": {"X": 1, "Y": 1, "Z": 1, "-": 0},
        "B": {"X": 0, "Y": 1, "Z": 0, "-": 1},
        "C": {"X": 1, "Y": 1, "Z": 1, "-": 2},
        "-": {"X": 0, "Y": 0, "Z": 0, "-": 0},
    }
    assert matrix["A"]["X"] == Cell(1, Decimal(400), ("c01",))
    assert matrix["B"]["-"] == Cell(1, Decimal(50), ("c05",))
    assert matrix["C"]["-"] == Cell(2, Decimal(0), ("c09", "c10"))
    assert matrix["-"]["-"] == Cell(0, Decimal(0), ())
    # every client lands once; the revenue adds up to the total, 1000
    assert sum(cell.count for cols in matrix.values() for cell in cols.values()) == 10
    assert sum(cell.revenue for cols in matrix.values() for cell in cols.values()) == 1000


def test_matrix_places_items_without_an_abc_class_in_row_dash() -> None:
    matrix = abc_xyz_matrix({"k": "A"}, {"k": xyz_class(_d("1", "1", "1")), "n": xyz_class([])}, {})
    assert matrix["A"]["X"] == Cell(1, Decimal(0), ("k",))  # mean 1, std 0, cv 0 -> X
    assert matrix["-"]["-"] == Cell(1, Decimal(0), ("n",))


# --- ABC edges -------------------------------------------------------------------------------


def test_abc_ties_are_broken_by_key() -> None:
    # total 100: x 70 (before 0 -> A); a and b 15 each, a first by key:
    # a before 70 % -> A (crosses to 85 %); b before 85 % -> B
    assert abc_classes({"x": Decimal(70), "b": Decimal(15), "a": Decimal(15)}) == {
        "x": "A",
        "a": "A",
        "b": "B",
    }


def test_a_none_key_sorts_last() -> None:
    # "no source" (None) ties with "web" at 10 of 100: web first (before 80 % -> B),
    # None after it (before 90 % -> B); none of the sorting compares None with a string
    revenue = {None: Decimal(10), "web": Decimal(10), "ads": Decimal(80)}
    assert abc_classes(revenue) == {"ads": "A", "web": "B", None: "B"}
    assert [p.key for p in pareto_curve(revenue)] == ["ads", "web", None]
    matrix = abc_xyz_matrix(abc_classes(revenue), {}, revenue)
    assert matrix["B"]["-"] == Cell(2, Decimal(20), ("web", None))


def test_abc_exact_thresholds() -> None:
    # total 100: p 80 (before 0 -> A); q before exactly 80 % -> not < 80 % -> B;
    # r before exactly 95 % -> not < 95 % -> C
    revenue = {"p": Decimal(80), "q": Decimal(15), "r": Decimal(5)}
    assert abc_classes(revenue) == {"p": "A", "q": "B", "r": "C"}
    # other thresholds: a = 50 %, b = 90 %: p A (0 %), q B (80 % < 90 %), r C (95 %)
    assert abc_classes(revenue, a=0.5, b=0.9) == {"p": "A", "q": "B", "r": "C"}
    # a = 85 %: q (80 % before) becomes A
    assert abc_classes(revenue, a=0.85) == {"p": "A", "q": "A", "r": "C"}


def test_abc_all_zero_revenue() -> None:
    revenue = {"a": Decimal(0), "b": Decimal(0)}
    assert abc_classes(revenue) == {"a": "C", "b": "C"}
    assert [p.cumulative_share for p in pareto_curve(revenue)] == [0.0, 0.0]
    assert abc_classes({}) == {}
    assert pareto_curve({}) == ()


def test_abc_thresholds_must_be_ordered_shares() -> None:
    with pytest.raises(ValueError, match="a <= b"):
        abc_classes({"a": Decimal(1)}, a=0.95, b=0.8)


# --- XYZ edges -------------------------------------------------------------------------------


def test_xyz_thresholds_are_inclusive() -> None:
    # [75, 125]: mean 100, deviations +-25, var 625, std 25, cv 0.25 -> Y (<= 25 %)
    assert xyz_class(_d("75", "125"), min_months=2) == XyzResult(0.25, "Y", None)
    # [74, 126]: mean 100, deviations +-26, var 676, std 26, cv 0.26 -> Z
    assert xyz_class(_d("74", "126"), min_months=2) == XyzResult(0.26, "Z", None)
    # [90, 110]: cv 10 / 100 = 0.1 -> X (<= 10 %); with x = 5 %: Y
    assert xyz_class(_d("90", "110"), min_months=2).cls == "X"
    assert xyz_class(_d("90", "110"), x=0.05, min_months=2).cls == "Y"


def test_xyz_population_not_sample_deviation() -> None:
    # [0, 10, 20]: mean 10; deviations -10, 0, 10; population var 200 / 3 = 66.667,
    # std 8.1650, cv 0.8165 (a sample std would divide by 2: std 10, cv 1.0)
    result = xyz_class(_d("0", "10", "20"))
    assert result.cv is not None
    assert round(result.cv, 4) == 0.8165
    assert result.cls == "Z"


def test_xyz_no_history() -> None:
    assert xyz_class([]) == XyzResult(None, None, "too few months")
    assert xyz_class([], min_months=0) == XyzResult(None, None, "too few months")
