"""Every number the yield report shows, computed without I/O: yields, Cpk, Pareto, histogram
bins, per-position yields and their flags. Imports only the standard library and the
report input dataclasses of ate.store.api.

Definitions (the page footer repeats them):
- a *test* is a run whose verdict is PASS, FAIL or ERROR; EMPTY (no board) and ABORTED
  (stopped by the operator or the station) runs are not tests;
- a *unit* is a chip id with at least one test in range; a test without a chip id (the unit
  could not be identified) counts as a unit of its own;
- first-pass yield = units whose first test in range passed and was their first test
  (no earlier run but aborted ones in range) / units;
- final yield = units whose latest test passed / units;
- retests = tests - units;
- a position's (station, fixture, slot) yield = first-pass yield of the units whose first
  test ran there;
- Cpk is computed, coloured and ranked only from CPK_MIN_UNITS values up: below that a
  sample standard deviation is too uncertain for a verdict;
- a measurement is *pass/fail* when its unit is bool/pass/fail, its step's type says so, or its
  values are only 0 and 1: it gets a count, never a histogram; it is an *identifier* when its
  unit is id/hex/mac/text or its name is id-like (mac, serial, chip id, revision, version,
  jedec..., or a register read `...[0x0f]`): never plotted as a number;
- control charts are I-MR charts: centre line the mean, sigma estimated as mean moving range /
  1.128, control limits +/-3 sigma; Western Electric rules 1-4 flag the point completing them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ate.store.api import MeasurementSeries, ReportInput, RunRow

TEST_VERDICTS = frozenset({"PASS", "FAIL", "ERROR"})

# A position is flagged when its yield is at least FLAG_MIN_GAP below the rest of the line
# *and* that many failures would be unlikely by chance: the exact binomial probability of
# seeing at least its failures at the rest of the line's failure rate is below FLAG_ALPHA
# divided by the number of positions of its kind (Bonferroni: 24 slots are 24 chances).
# Fewer than FLAG_MIN_TESTS units at a position are too few to say anything.
FLAG_MIN_GAP = 0.02
FLAG_ALPHA = 0.01
FLAG_MIN_TESTS = 10
# A measurement drifts when the mean of its last tenth of values moved this many sample
# standard deviations from the mean of its first tenth.
DRIFT_SIGMA = 1.0
DRIFT_MIN_VALUES = 20
# Cpk is a verdict only from this many values: with fewer, the sample sigma is too uncertain
# (its 90 % interval at n = 30 is already about +/-20 %).
CPK_MIN_UNITS = 30
# Cpk colour bands.
CPK_RED = 1.0
CPK_AMBER = 1.33
# Hourly buckets when the data spans at most this long, daily otherwise.
HOURLY_SPAN = timedelta(hours=48)


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


# ---------------------------------------------------------------- units and yields


@dataclass(frozen=True)
class UnitOutcome:
    """One unit's tests in range, oldest first."""

    key: str
    first: RunRow
    last: RunRow
    tests: int
    runs_before: int = 0  # the unit's runs in range before its first test (ABORTED ones)

    @property
    def first_pass(self) -> bool:
        """Its first test passed and it had no earlier test: the store numbers every run
        of a unit (attempt), aborted ones too, which are not tests."""
        return self.first.verdict == "PASS" and self.first.attempt - self.runs_before <= 1

    @property
    def final_pass(self) -> bool:
        return self.last.verdict == "PASS"


@dataclass(frozen=True)
class Summary:
    units: int
    tests: int
    empty: int
    aborted: int
    retests: int
    first_pass: int
    final_pass: int
    test_pass: int
    first_at: str | None
    last_at: str | None

    @property
    def first_pass_yield(self) -> float | None:
        return ratio(self.first_pass, self.units)

    @property
    def final_yield(self) -> float | None:
        return ratio(self.final_pass, self.units)

    @property
    def test_yield(self) -> float | None:
        return ratio(self.test_pass, self.tests)


def is_test(run: RunRow) -> bool:
    return run.verdict in TEST_VERDICTS


def _order(run: RunRow) -> tuple[str, int, str]:
    return (run.started_at, run.attempt, run.run_id)


def unit_outcomes(runs: Iterable[RunRow]) -> list[UnitOutcome]:
    """Group the tests by unit; units in the order of their first test."""
    tests: dict[str, list[RunRow]] = {}
    before: Counter[str] = Counter()
    for run in sorted(runs, key=_order):
        if run.verdict in TEST_VERDICTS:
            tests.setdefault(run.chip_id or f"run:{run.run_id}", []).append(run)
        elif run.chip_id is not None and run.chip_id not in tests:
            before[run.chip_id] += 1
    return [UnitOutcome(key, rs[0], rs[-1], len(rs), before[key]) for key, rs in tests.items()]


def summarize(runs: Sequence[RunRow], units: Sequence[UnitOutcome] | None = None) -> Summary:
    if units is None:
        units = unit_outcomes(runs)
    verdicts = Counter(r.verdict for r in runs)
    tests = sum(verdicts[v] for v in TEST_VERDICTS)
    times = [r.started_at for r in runs]
    return Summary(
        units=len(units),
        tests=tests,
        empty=verdicts["EMPTY"],
        aborted=verdicts["ABORTED"],
        retests=tests - len(units),
        first_pass=sum(1 for u in units if u.first_pass),
        final_pass=sum(1 for u in units if u.final_pass),
        test_pass=verdicts["PASS"],
        first_at=min(times) if times else None,
        last_at=max(times) if times else None,
    )


# ---------------------------------------------------------------- yield over time


@dataclass(frozen=True)
class YieldBucket:
    """Units whose first test in range started in [start, start + one bucket)."""

    start: datetime
    units: int
    first_pass: int
    final_pass: int

    @property
    def first_pass_yield(self) -> float | None:
        return ratio(self.first_pass, self.units)

    @property
    def final_yield(self) -> float | None:
        return ratio(self.final_pass, self.units)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (a naive one is taken as UTC)."""
    t = datetime.fromisoformat(text)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _floor(t: datetime, hourly: bool) -> datetime:
    return (
        t.replace(minute=0, second=0, microsecond=0)
        if hourly
        else datetime(t.year, t.month, t.day, tzinfo=UTC)
    )


def yield_over_time(units: Sequence[UnitOutcome]) -> tuple[str, list[YieldBucket]]:
    """("hour" | "day", one bucket per hour or day from the first unit's to the last one's,
    empty buckets included so gaps in production show as gaps)."""
    if not units:
        return "day", []
    starts = [parse_time(u.first.started_at) for u in units]
    hourly = max(starts) - min(starts) <= HOURLY_SPAN
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    tally: dict[datetime, list[int]] = defaultdict(lambda: [0, 0, 0])
    for unit, t in zip(units, starts, strict=True):
        cell = tally[_floor(t, hourly)]
        cell[0] += 1
        cell[1] += unit.first_pass
        cell[2] += unit.final_pass
    out: list[YieldBucket] = []
    t, end = min(tally), max(tally)
    while t <= end:
        n, fp, fin = tally.get(t, (0, 0, 0))
        out.append(YieldBucket(t, n, fp, fin))
        t += step
    return ("hour" if hourly else "day"), out


# ---------------------------------------------------------------- Pareto


@dataclass(frozen=True)
class ParetoBar:
    label: str
    count: int
    cumulative_pct: float


NO_STEP = "(no failing step)"


def pareto(runs: Iterable[RunRow], top: int = 12) -> list[ParetoBar]:
    """Failing tests by failing step, most first; beyond `top` steps the rest are folded
    into one "other" bar at the end. The cumulative percentage ends at exactly 100."""
    if top < 1:
        raise ValueError(f"a Pareto needs at least one bar, not top={top}")
    counts = Counter(
        r.failing_step or NO_STEP for r in runs if r.verdict in TEST_VERDICTS - {"PASS"}
    )
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) > top:
        rest = ranked[top - 1 :]
        ranked = [
            *ranked[: top - 1],
            (f"other ({len(rest)} steps)", sum(c for _, c in rest)),
        ]
    total = sum(c for _, c in ranked)
    bars: list[ParetoBar] = []
    running = 0
    for label, count in ranked:
        running += count
        bars.append(ParetoBar(label, count, 100.0 * running / total))
    return bars


# ---------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Capability:
    n: int
    mean: float | None
    sigma: float | None  # sample standard deviation (n - 1)
    cpk: float | None
    minimum: float | None
    maximum: float | None


def mean_sigma(values: Sequence[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((x - mean) * (x - mean) for x in values) / (n - 1)
    return mean, math.sqrt(var)


def _side(distance: float, sigma: float) -> float:
    if sigma > 0:
        return distance / (3.0 * sigma)
    return math.inf if distance > 0 else -math.inf if distance < 0 else 0.0


def cpk(
    mean: float | None, sigma: float | None, low: float | None, high: float | None
) -> float | None:
    """min((USL - mean) / 3s, (mean - LSL) / 3s); one-sided with one limit; None without
    limits or without a sigma (fewer than two values). With s = 0 a centred process is +inf."""
    if mean is None or sigma is None or (low is None and high is None):
        return None
    sides = []
    if high is not None:
        sides.append(_side(high - mean, sigma))
    if low is not None:
        sides.append(_side(mean - low, sigma))
    return min(sides)


def capability(values: Sequence[float], low: float | None, high: float | None) -> Capability:
    mean, sigma = mean_sigma(values)
    return Capability(
        n=len(values),
        mean=mean,
        sigma=sigma,
        cpk=cpk(mean, sigma, low, high),
        minimum=min(values) if values else None,
        maximum=max(values) if values else None,
    )


def cpk_band(value: float | None) -> str:
    """ "bad" (< 1.0), "warn" (< 1.33), "good", or "na"."""
    if value is None:
        return "na"
    return "bad" if value < CPK_RED else "warn" if value < CPK_AMBER else "good"


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # len(counts) + 1, ascending
    counts: list[int]

    @property
    def n(self) -> int:
        return sum(self.counts)


def _quantile(ordered: Sequence[float], q: float) -> float:
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def histogram(values: Sequence[float], bins: int | None = None, max_bins: int = 40) -> Histogram:
    """Bins over the data's range. Whole-number data spanning at most `max_bins` values get
    one bin per value; otherwise the Freedman-Diaconis width, between 5 and `max_bins` bins."""
    if not values:
        return Histogram([], [])
    lo, hi = min(values), max(values)
    if bins is None and all(float(v).is_integer() for v in values) and hi - lo < max_bins:
        edges = [lo - 0.5 + i for i in range(int(hi - lo) + 2)]
        counts = [0] * (len(edges) - 1)
        for v in values:
            counts[int(v - lo)] += 1
        return Histogram(edges, counts)
    if hi == lo:
        half = abs(lo) * 0.01 or 0.5
        return Histogram([lo - half, lo + half], [len(values)])
    if bins is None:
        ordered = sorted(values)
        iqr = _quantile(ordered, 0.75) - _quantile(ordered, 0.25)
        fd_width = 2.0 * iqr / len(values) ** (1 / 3)
        ratio = (hi - lo) / fd_width if fd_width > 0 else math.inf
        bins = max(5, min(max_bins, math.ceil(ratio))) if math.isfinite(ratio) else max_bins
    if bins < 1:
        raise ValueError(f"a histogram needs at least one bin, not {bins}")
    width = (hi - lo) / bins
    if width <= 0:  # a range too narrow to split (subnormal): one bin
        return Histogram([lo, hi], [len(values)])
    counts = [0] * bins
    last = bins - 1
    for v in values:
        i = int((v - lo) / width)
        counts[i if i < last else last] += 1
    return Histogram([lo + width * i for i in range(bins)] + [hi], counts)


@dataclass(frozen=True)
class Trend:
    """Values in time order, in at most `points` consecutive chunks: mean, min, max each."""

    means: list[float]
    lows: list[float]
    highs: list[float]
    chunk: int  # values a chunk


def trend(values: Sequence[float], points: int = 120) -> Trend:
    if not values:
        return Trend([], [], [], 0)
    chunk = max(1, math.ceil(len(values) / points))
    means, lows, highs = [], [], []
    for i in range(0, len(values), chunk):
        part = values[i : i + chunk]
        means.append(math.fsum(part) / len(part))
        lows.append(min(part))
        highs.append(max(part))
    return Trend(means, lows, highs, chunk)


def drift(values: Sequence[float], sigma: float | None) -> float | None:
    """(mean of the last tenth - mean of the first tenth) / sigma; None with too few values
    or no spread."""
    n = len(values)
    if n < DRIFT_MIN_VALUES or not sigma:
        return None
    k = n // 10
    return (math.fsum(values[-k:]) - math.fsum(values[:k])) / k / sigma


@dataclass(frozen=True)
class SeriesStats:
    series: MeasurementSeries
    capability: Capability
    histogram: Histogram
    trend: Trend
    drift: float | None
    kind: str = "quantity"  # "quantity" | "passfail" | "identifier"
    control: ControlChart | None = None

    @property
    def too_few(self) -> bool:
        return self.capability.n < CPK_MIN_UNITS

    @property
    def passes(self) -> int:
        return sum(1 for v in self.series.values if v == 1)

    @property
    def fails(self) -> int:
        return len(self.series.values) - self.passes

    @property
    def label(self) -> str:
        return f"{self.series.step} / {self.series.name}"

    @property
    def drifting(self) -> bool:
        return self.drift is not None and abs(self.drift) >= DRIFT_SIGMA


def series_stats(series: MeasurementSeries) -> SeriesStats:
    cap = capability(series.values, series.low, series.high)
    kind = measurement_kind(series)
    # too few units for a verdict, or not a quantity: no Cpk, no alarm, not ranked
    if cap.n < CPK_MIN_UNITS or kind != "quantity":
        cap = dataclasses.replace(cap, cpk=None)
    return SeriesStats(
        series=series,
        capability=cap,
        histogram=histogram(series.values),
        trend=trend(series.values),
        drift=drift(series.values, cap.sigma),
        kind=kind,
        control=control_chart(series) if kind == "quantity" else None,
    )


def _cpk_order(s: SeriesStats) -> tuple[int, float, str]:
    c = s.capability.cpk
    return (1, 0.0, s.label) if c is None else (0, c, s.label)


def worst_first(stats: Iterable[SeriesStats]) -> list[SeriesStats]:
    """Lowest Cpk first; measurements without a Cpk last, by name."""
    return sorted(stats, key=_cpk_order)


# ---------------------------------------------------------------- kinds of measurement

PASSFAIL_UNITS = frozenset({"bool", "pass", "fail", "pass/fail", "passfail", "ok"})
PASSFAIL_STEP_TYPES = frozenset({"bool", "check", "passfail", "pass_fail"})
ID_UNITS = frozenset({"id", "hex", "mac", "text", "serial", "rev"})
# id-like names: whole words (split at _ - . space) that name what a unit *is*, not a quantity
ID_WORDS = frozenset(
    {"id", "mac", "serial", "sn", "rev", "revision", "version", "uid", "uuid", "efuse"}
    | {"jedec", "whoami", "who_am_i", "fingerprint", "hash", "crc"}
)
# a register read (`i2c0@0x48[0x0f]`) is a bit pattern, not a quantity
REGISTER_READ = re.compile(r"\[0x[0-9a-f]+\]$")


def measurement_kind(series: MeasurementSeries) -> str:
    """ "identifier" (never plotted as a number), "passfail" (counted) or "quantity"."""
    unit = series.unit.strip().lower()
    words = set(re.split(r"[_\-. ]+", series.name.lower()))
    if unit in ID_UNITS or words & ID_WORDS or REGISTER_READ.search(series.name.lower()):
        return "identifier"
    if (
        unit in PASSFAIL_UNITS
        or series.step_type.lower() in PASSFAIL_STEP_TYPES
        or (series.values and all(v in (0.0, 1.0) for v in series.values))
    ):
        return "passfail"
    return "quantity"


# ---------------------------------------------------------------- control charts

D2 = 1.128  # E[moving range of 2] / sigma for a normal process
D4 = 3.267  # the moving-range chart's upper control limit factor
WE_RULES = {
    1: "1 point beyond 3\u03c3",
    2: "2 of 3 beyond 2\u03c3, same side",
    3: "4 of 5 beyond 1\u03c3, same side",
    4: "8 in a row on one side of the centre",
}


@dataclass(frozen=True)
class LimitSegment:
    """Spec limits that held from value `start` to `end` (exclusive), under one version."""

    start: int
    end: int
    version: str
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Violation:
    index: int  # the value completing the rule's pattern
    rule: int
    value: float


@dataclass(frozen=True)
class ControlChart:
    values: list[float]
    moving_ranges: list[float]  # len(values) - 1
    centre: float
    sigma: float  # mean moving range / D2
    mr_bar: float
    segments: list[LimitSegment]
    violations: list[Violation]

    @property
    def ucl(self) -> float:
        return self.centre + 3 * self.sigma

    @property
    def lcl(self) -> float:
        return self.centre - 3 * self.sigma

    @property
    def mr_ucl(self) -> float:
        return D4 * self.mr_bar


def limit_segments(series: MeasurementSeries) -> list[LimitSegment]:
    """The spec limits as they were at each value: a new segment wherever the sequence
    version or the limits changed. Without a per-value history, one segment."""
    n = len(series.values)
    if not n:
        return []
    if len(series.lows) != n or len(series.highs) != n or len(series.versions) != n:
        return [LimitSegment(0, n, "", series.low, series.high)]
    out: list[LimitSegment] = []
    start = 0
    for i in range(1, n + 1):
        if i == n or (series.versions[i], series.lows[i], series.highs[i]) != (
            series.versions[start],
            series.lows[start],
            series.highs[start],
        ):
            out.append(
                LimitSegment(
                    start, i, series.versions[start], series.lows[start], series.highs[start]
                )
            )
            start = i
    return out


def we_violations(values: Sequence[float], centre: float, sigma: float) -> list[Violation]:
    """Western Electric rules 1-4, each flagged at the point that completes its pattern
    (that point itself lies in the zone the rule counts). No spread, no flags."""
    if not sigma > 0 or not math.isfinite(sigma):
        return []
    z = [(v - centre) / sigma for v in values]
    out: list[Violation] = []
    for i, zi in enumerate(z):
        if abs(zi) > 3:
            out.append(Violation(i, 1, values[i]))
        for rule, window, need, zone in ((2, 3, 2, 2.0), (3, 5, 4, 1.0)):
            if i + 1 < window:
                continue
            part = z[i + 1 - window : i + 1]
            for side in (1, -1):
                if side * zi > zone and sum(1 for p in part if side * p > zone) >= need:
                    out.append(Violation(i, rule, values[i]))
        if i >= 7:
            part = z[i - 7 : i + 1]
            if all(p > 0 for p in part) or all(p < 0 for p in part):
                out.append(Violation(i, 4, values[i]))
    return out


def control_chart(series: MeasurementSeries) -> ControlChart | None:
    """An I-MR chart of the values in time order; None with fewer than two values."""
    values = list(series.values)
    if len(values) < 2:
        return None
    mrs = [abs(b - a) for a, b in itertools.pairwise(values)]
    mr_bar = math.fsum(mrs) / len(mrs)
    centre = math.fsum(values) / len(values)
    sigma = mr_bar / D2
    return ControlChart(
        values=values,
        moving_ranges=mrs,
        centre=centre,
        sigma=sigma,
        mr_bar=mr_bar,
        segments=limit_segments(series),
        violations=we_violations(values, centre, sigma),
    )


# ---------------------------------------------------------------- retests


@dataclass(frozen=True)
class RetestBar:
    tests: int  # tests a unit took in range
    units: int
    passed: int  # of those units, how many finally passed


def retest_distribution(units: Iterable[UnitOutcome]) -> list[RetestBar]:
    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for u in units:
        cell = tally[u.tests]
        cell[0] += 1
        cell[1] += u.final_pass
    return [RetestBar(k, *tally[k]) for k in sorted(tally)]


# ---------------------------------------------------------------- positions


@dataclass(frozen=True)
class PositionYield:
    """First-pass yield of the units whose first test ran at a position."""

    key: tuple[str, ...]  # ("st1",) or ("st1-fx1",) or ("st1-fx1", "3")
    tests: int  # units whose first test ran here
    passed: int  # of them, first-pass units
    p_value: float | None  # P(at least its failures | the rest's failure rate); None if better
    flagged: bool

    @property
    def label(self) -> str:
        return " slot ".join(self.key)

    @property
    def test_yield(self) -> float:
        return self.passed / self.tests if self.tests else 0.0


def position_yields(
    units: Iterable[UnitOutcome], key: Callable[[RunRow], tuple[Hashable, ...]]
) -> list[PositionYield]:
    """First-pass yield per position (by where each unit's first test ran), in key order,
    each compared with the rest of the line. First tests only: retests are not a random
    sample (a unit with a real defect fails wherever it is retested), first tests are."""
    tally: dict[tuple[Hashable, ...], list[int]] = defaultdict(lambda: [0, 0])
    for u in units:
        cell = tally[key(u.first)]
        cell[0] += 1
        cell[1] += u.first_pass
    total = sum(c[0] for c in tally.values())
    passed = sum(c[1] for c in tally.values())
    alpha = FLAG_ALPHA / max(len(tally), 1)
    out: list[PositionYield] = []
    for k in sorted(tally, key=lambda t: tuple(_sort_key(p) for p in t)):
        n, p = tally[k]
        rest_n, rest_fail = total - n, (total - passed) - (n - p)
        gap = (rest_n - rest_fail) / rest_n - p / n if rest_n else 0.0
        p_value = binom_sf(n - p, n, rest_fail / rest_n) if rest_n and gap > 0 else None
        flagged = (
            p_value is not None and n >= FLAG_MIN_TESTS and p_value < alpha and gap >= FLAG_MIN_GAP
        )
        out.append(PositionYield(tuple(str(p_) for p_ in k), n, p, p_value, flagged))
    return out


def _sort_key(part: Hashable) -> tuple[int, str]:
    # numbers in numeric order (slot 2 before slot 10), then text
    return (0, f"{part:012d}") if isinstance(part, int) else (1, str(part))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (summed from k up in log space)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    term = math.exp(log_pmf)
    total = term
    odds = p / (1.0 - p)
    for j in range(k, n):
        term *= (n - j) / (j + 1) * odds
        total += term
        if j + 1 > n * p and term <= total * 1e-16:  # past the mode: the rest is negligible
            break
    return min(total, 1.0)


# ---------------------------------------------------------------- everything


@dataclass(frozen=True)
class Analysis:
    since: str | None
    until: str | None
    summary: Summary
    granularity: str
    buckets: list[YieldBucket]
    pareto: list[ParetoBar]
    measurements: list[SeriesStats]  # worst Cpk first
    retests: list[RetestBar]
    passed_on_retry: list[tuple[str, int]]  # (step, results that passed only on retry)
    stations: list[PositionYield]
    fixtures: list[PositionYield]
    slots: list[PositionYield]

    @property
    def flagged(self) -> list[PositionYield]:
        return [p for p in (*self.stations, *self.fixtures, *self.slots) if p.flagged]


def analyse(report: ReportInput) -> Analysis:
    runs = report.runs
    units = unit_outcomes(runs)
    granularity, buckets = yield_over_time(units)
    return Analysis(
        since=report.since,
        until=report.until,
        summary=summarize(runs, units),
        granularity=granularity,
        buckets=buckets,
        pareto=pareto(runs),
        measurements=worst_first(series_stats(s) for s in report.series),
        retests=retest_distribution(units),
        passed_on_retry=sorted(report.passed_on_retry.items(), key=lambda kv: (-kv[1], kv[0])),
        stations=position_yields(units, lambda r: (r.station,)),
        fixtures=position_yields(units, lambda r: (r.fixture,)),
        slots=position_yields(units, lambda r: (r.fixture, r.slot)),
    )
