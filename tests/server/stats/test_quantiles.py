"""The consumers' p95 from counts of response times is exactly the engine's quantile_cont
(numpy's linear interpolation), whatever the counts."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from server.stats.consumers import _quantiles


@pytest.mark.parametrize("seed", range(30))
def test_a_quantile_from_counts_is_the_quantile_of_the_values(seed):
    rng = random.Random(seed)
    values = {
        name: [rng.choice([0, 1, 2, 5, 9, 30, rng.randint(0, 5000)]) for _ in range(size)]
        for name, size in (("a", rng.randint(1, 3)), ("b", rng.randint(4, 50)), ("c", 999))
    }
    rows = [
        (name, time, found.count(time)) for name, found in values.items() for time in set(found)
    ]
    rng.shuffle(rows)
    counts = pd.DataFrame(rows, columns=["consumer", "response_time", "n"])
    for q in (0.5, 0.95, 0.99):
        got = _quantiles(counts, "consumer", q)
        for name, found in values.items():
            assert got[name] == pytest.approx(np.percentile(found, q * 100), abs=1e-9)
