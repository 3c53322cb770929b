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


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("huge", [False, True])
def test_each_buckets_percentiles_are_numpys_whatever_the_order(seed, huge):
    """server.stats.latency.per_bucket: pairs repeated across sources and shuffled; `huge`
    puts a value past 2**31 ms, which the packed sort cannot hold (the lexsort path)."""
    from server.stats.latency import per_bucket

    rng = random.Random(seed)
    found = {
        bucket: [rng.choice([0, 1, 7, 40, rng.randint(0, 3000)]) for _ in range(rng.randint(1, 80))]
        for bucket in rng.sample(range(1_700_000_000, 1_800_000_000, 86_400), 12)
    }
    if huge:
        found[1_700_000_000] = [5, 2**33]
    rows = [(b, t, 1) for b, times in found.items() for t in times]  # equal pairs repeated
    rng.shuffle(rows)
    got = per_bucket(pd.DataFrame(rows, columns=["bucket", "rt", "n"]))
    assert got["bucket"].tolist() == sorted(found)
    for bucket, p50, p95 in got.itertuples(index=False):
        assert p50 == pytest.approx(np.percentile(found[bucket], 50), abs=1e-6)
        assert p95 == pytest.approx(np.percentile(found[bucket], 95), abs=1e-6)
