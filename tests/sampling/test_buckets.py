"""History buckets: few capacities per video, each unit in the smallest one that holds its history."""

import pytest

from pyramid_jax.sampling.buckets import bucket_capacity, history_buckets


def test_bucket_counts_meet_the_program_budget():
    assert history_buckets(16) == (5, 10, 15)  # + the first unit: 4 programs at 384p
    assert history_buckets(31) == (8, 15, 23, 30)  # + the first unit: 5 programs at 768p
    assert history_buckets(3) == (2,)
    assert history_buckets(1) == ()


def test_each_unit_gets_the_smallest_bucket_that_holds_it():
    buckets = history_buckets(16)
    assert [bucket_capacity(u, buckets) for u in (0, 1, 5, 6, 10, 11, 15)] == [0, 5, 5, 10, 10, 15, 15]
    with pytest.raises(ValueError, match="exceeds the largest bucket"):
        bucket_capacity(16, buckets)
