"""Distributions of the workload format: service seconds, fan-out widths and token counts.

Every law is sampled by inversion (``ppf`` of a uniform), so one stream of uniforms drives a whole
simulation and two policies run on identical apps (common random numbers). ``cdf`` and ``ppf``
also let the oracle draw residual sizes conditioned on service already received.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from hermes_sdk.errors import ConfigError

_STD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Dist:
    """A distribution on [0, inf): ``ppf`` maps a uniform to a draw."""

    def ppf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """Inverse CDF, vectorised."""
        raise NotImplementedError

    def ppf1(self, u: float) -> float:
        """Inverse CDF of one uniform (pure Python, the simulator's hot path)."""
        return float(self.ppf(np.array([u]))[0])

    def cdf(self, x: float) -> float:
        """P(X <= x)."""
        raise NotImplementedError

    def mean(self) -> float:
        """Expected value."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, size: int) -> NDArray[np.float64]:
        """``size`` independent draws."""
        return self.ppf(rng.random(size))

    def conditional_grid(self, above: float, n: int) -> NDArray[np.float64]:
        """``n`` evenly spaced quantiles of X given X > ``above`` (sorted, deterministic).

        Quantile levels are ``i / (n + 1)`` of the conditional law, so an empirical Gittins index
        computed on them is free of the sampling noise random draws would add.
        """
        lo = self.cdf(above)
        if lo >= 1.0:
            return np.empty(0)
        u = lo + (1.0 - lo) * (np.arange(1, n + 1, dtype=np.float64) / (n + 1))
        out = self.ppf(u)
        return out[out > above]


@dataclass(frozen=True, slots=True)
class Deterministic(Dist):
    value: float

    def ppf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.full(np.shape(u), self.value)

    def ppf1(self, u: float) -> float:
        return self.value

    def cdf(self, x: float) -> float:
        return 1.0 if x >= self.value else 0.0

    def mean(self) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Exponential(Dist):
    mean_value: float

    def ppf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        return -self.mean_value * np.log1p(-u)

    def ppf1(self, u: float) -> float:
        return -self.mean_value * math.log1p(-u)

    def cdf(self, x: float) -> float:
        return 0.0 if x <= 0 else -math.expm1(-x / self.mean_value)

    def mean(self) -> float:
        return self.mean_value


@dataclass(frozen=True, slots=True)
class Discrete(Dist):
    """Finitely many values with probabilities (two_point, empirical)."""

    values: tuple[float, ...]
    """Sorted distinct values."""
    cum: tuple[float, ...]
    """Cumulative probabilities, last = 1."""
    _values: NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _cum: NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_values", np.asarray(self.values, dtype=np.float64))
        object.__setattr__(self, "_cum", np.asarray(self.cum, dtype=np.float64))

    def ppf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        idx = np.searchsorted(self._cum, u, side="left")
        return self._values[np.minimum(idx, len(self.values) - 1)]

    def ppf1(self, u: float) -> float:
        return self.values[min(bisect_left(self.cum, u), len(self.values) - 1)]

    def cdf(self, x: float) -> float:
        i = bisect_right(self.values, x)
        return 0.0 if i == 0 else self.cum[i - 1]

    def mean(self) -> float:
        prev = 0.0
        total = 0.0
        for value, c in zip(self.values, self.cum, strict=True):
            total += value * (c - prev)
            prev = c
        return total

    @staticmethod
    def of(values: Sequence[float], probs: Sequence[float]) -> Discrete:
        """Merge equal values, sort, and accumulate probabilities."""
        merged: dict[float, float] = {}
        for v, p in zip(values, probs, strict=True):
            merged[float(v)] = merged.get(float(v), 0.0) + float(p)
        total = math.fsum(merged.values())
        keys = sorted(merged)
        cum = np.cumsum([merged[k] / total for k in keys])
        cum[-1] = 1.0
        return Discrete(tuple(keys), tuple(float(c) for c in cum))


@dataclass(frozen=True, slots=True)
class Lognormal(Dist):
    mean_value: float
    cv: float

    @property
    def _mu_sigma(self) -> tuple[float, float]:
        sigma2 = math.log1p(self.cv**2)
        return math.log(self.mean_value) - sigma2 / 2, math.sqrt(sigma2)

    def ppf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        mu, sigma = self._mu_sigma
        return np.asarray(np.exp(mu + sigma * ndtri(u)), dtype=np.float64)

    def ppf1(self, u: float) -> float:
        mu, sigma = self._mu_sigma
        u = min(max(u, 1e-300), 1.0 - 1e-16)
        return math.exp(mu + sigma * _STD_NORMAL.inv_cdf(u))

    def cdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        mu, sigma = self._mu_sigma
        return float(ndtr((math.log(x) - mu) / sigma)) if sigma > 0 else float(x >= self.mean())

    def mean(self) -> float:
        return self.mean_value


@dataclass(frozen=True, slots=True)
class BoundedPareto(Dist):
    alpha: float
    low: float
    high: float

    def ppf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        tail = 1.0 - (self.low / self.high) ** self.alpha
        return np.asarray(self.low / (1.0 - u * tail) ** (1.0 / self.alpha), dtype=np.float64)

    def ppf1(self, u: float) -> float:
        tail = 1.0 - (self.low / self.high) ** self.alpha
        return float(self.low / (1.0 - u * tail) ** (1.0 / self.alpha))

    def cdf(self, x: float) -> float:
        if x <= self.low:
            return 0.0
        if x >= self.high:
            return 1.0
        ratio = (self.low / self.high) ** self.alpha
        return float((1.0 - (self.low / x) ** self.alpha) / (1.0 - ratio))

    def mean(self) -> float:
        a, lo, hi = self.alpha, self.low, self.high
        norm = 1.0 - (lo / hi) ** a
        if a == 1.0:
            return float((lo / norm) * math.log(hi / lo))
        return float((lo**a / norm) * (a / (a - 1.0)) * (lo ** (1.0 - a) - hi ** (1.0 - a)))


@dataclass(frozen=True, slots=True)
class Uniform(Dist):
    low: float
    high: float

    def ppf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.low + (self.high - self.low) * u

    def ppf1(self, u: float) -> float:
        return self.low + (self.high - self.low) * u

    def cdf(self, x: float) -> float:
        if x <= self.low:
            return 0.0
        if x >= self.high:
            return 1.0
        return (x - self.low) / (self.high - self.low)

    def mean(self) -> float:
        return (self.low + self.high) / 2


def _num(spec: Mapping[str, object], key: str, where: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key} must be a finite number, got {value!r}")
    return float(value)


def parse_dist(spec: object, where: str) -> Dist:
    """Build a :class:`Dist` from its JSON form; ConfigError names ``where`` and the field."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be an object like {{'dist': 'exponential', 'mean': 1}}")
    kind = spec.get("dist")
    if kind == "deterministic":
        value = _num(spec, "value", where)
        if value < 0:
            raise ConfigError(f"{where}.value must be >= 0, got {value}")
        return Deterministic(value)
    if kind == "exponential":
        mean = _num(spec, "mean", where)
        if mean <= 0:
            raise ConfigError(f"{where}.mean must be > 0, got {mean}")
        return Exponential(mean)
    if kind in ("two_point", "empirical"):
        raw = spec.get("values" if kind == "two_point" else "samples")
        field = "values" if kind == "two_point" else "samples"
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}.{field} must be a non-empty list of numbers")
        values = [_num({field: v}, field, where) for v in raw]
        if any(v < 0 for v in values):
            raise ConfigError(f"{where}.{field} must all be >= 0")
        if kind == "empirical":
            return Discrete.of(values, [1.0] * len(values))
        probs_raw = spec.get("probs")
        if not isinstance(probs_raw, list) or len(probs_raw) != len(values):
            raise ConfigError(f"{where}.probs must be a list as long as {where}.values")
        probs = [_num({"probs": p}, "probs", where) for p in probs_raw]
        if any(p < 0 for p in probs) or abs(math.fsum(probs) - 1.0) > 1e-6:
            raise ConfigError(f"{where}.probs must be >= 0 and sum to 1, got {probs}")
        return Discrete.of(values, probs)
    if kind == "lognormal":
        mean, cv = _num(spec, "mean", where), _num(spec, "cv", where)
        if mean <= 0 or cv < 0:
            raise ConfigError(f"{where} needs mean > 0 and cv >= 0, got mean={mean}, cv={cv}")
        return Lognormal(mean, cv) if cv > 0 else Deterministic(mean)
    if kind == "bounded_pareto":
        alpha, low, high = (_num(spec, k, where) for k in ("alpha", "low", "high"))
        if alpha <= 0 or not 0 < low < high:
            raise ConfigError(f"{where} needs alpha > 0 and 0 < low < high")
        return BoundedPareto(alpha, low, high)
    if kind == "uniform":
        low, high = _num(spec, "low", where), _num(spec, "high", where)
        if not 0 <= low <= high:
            raise ConfigError(f"{where} needs 0 <= low <= high, got low={low}, high={high}")
        return Uniform(low, high) if high > low else Deterministic(low)
    raise ConfigError(
        f"{where}.dist must be one of deterministic, exponential, two_point, lognormal, "
        f"bounded_pareto, uniform, empirical; got {kind!r}"
    )
