"""Online statistics against numpy on every prefix (style habit 6)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.volume import ALPHA, _ewm


def weighted_reference(xs: list[float], alpha: float) -> tuple[float, float]:
    """Batch mean and variance with the weights the online update implies:
    plain mean/variance over the first 1/alpha samples, exponential decay afterwards."""
    n = len(xs)
    warm = min(n, int(round(1 / alpha)))
    weights = np.full(warm, 1.0 / warm)
    for _ in range(warm, n):
        weights = np.append(weights * (1 - alpha), alpha)
    values = np.asarray(xs, dtype=float)
    mean = float(np.sum(weights * values))
    var = float(np.sum(weights * (values - mean) ** 2))
    return mean, var


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ewm__matches_numpy_on_every_prefix(seed):
    rng = random.Random(seed)
    xs = [rng.expovariate(0.2) if rng.random() < 0.9 else rng.uniform(50, 90)
          for _ in range(160)]
    mean = var = 0.0
    for n, x in enumerate(xs):
        mean, var = _ewm(mean, var, x, ALPHA, n)
        ref_mean, ref_var = weighted_reference(xs[: n + 1], ALPHA)
        assert mean == pytest.approx(ref_mean, rel=1e-9, abs=1e-9)
        assert var == pytest.approx(ref_var, rel=1e-7, abs=1e-9)


def test_ewm__warm_up_is_plain_mean_and_population_variance():
    xs = [3.0, 5.0, 10.0, 0.0, 7.0]
    mean = var = 0.0
    for n, x in enumerate(xs):
        mean, var = _ewm(mean, var, x, ALPHA, n)
        assert mean == pytest.approx(np.mean(xs[: n + 1]))
        assert var == pytest.approx(np.var(xs[: n + 1]))
