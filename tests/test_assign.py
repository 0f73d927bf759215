"""Per-request level assignment (sprout_core/assign.py): the rule shared by replay and gateway."""
import numpy as np
import pytest

from sprout_core import assign
from sprout_core.errors import SproutError


def test_stream_is_default_rng_of_seed_and_hour():
    a = assign.level_stream(7, 123).random(5)
    b = np.random.default_rng([7, 123]).random(5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, assign.level_stream(7, 124).random(5))


def test_vectorised_equals_one_at_a_time_single_mix():
    x = [0.2, 0.5, 0.3]
    levels = assign.assign_hour(x, 2000, seed=3, hour=41)
    stream = assign.level_stream(3, 41)
    one = [assign.pick_level(x, stream.random()) for _ in range(2000)]
    assert levels.tolist() == one


def test_vectorised_equals_one_at_a_time_per_request_mixes():
    rng = np.random.default_rng(0)
    x = rng.dirichlet([0.5, 0.5, 0.5], size=1500)
    x[::7, 1] = 0.0  # some requests' mixes have a zero share
    levels = assign.assign_hour(x, 1500, seed=11, hour=8000)
    stream = assign.level_stream(11, 8000)
    one = [assign.pick_level(x[k], stream.random()) for k in range(1500)]
    assert levels.tolist() == one
    assert not np.any(levels[::7] == 1)


def test_zero_share_never_picked_even_at_boundaries():
    x = [0.0, 0.4, 0.0, 0.6, 0.0]
    us = np.concatenate([[0.0, 0.4, np.nextafter(0.4, 0), np.nextafter(1.0, 0)],
                         np.random.default_rng(1).random(20000)])
    got = assign.pick_levels(np.asarray(x), us)
    assert set(got.tolist()) <= {1, 3}
    assert all(assign.pick_level(x, u) in (1, 3) for u in us[:4])
    assert assign.pick_level([1.0, 0.0], np.nextafter(1.0, 0)) == 0


def test_unnormalised_shares_are_renormalised():
    assert assign.pick_levels(np.array([2.0, 6.0]), np.array([0.2, 0.3])).tolist() == [0, 1]


@pytest.mark.parametrize("x", [[0.7, 0.2, 0.1], [0.05, 0.0, 0.95], [1 / 3, 1 / 3, 1 / 3]])
def test_empirical_shares_match_the_mix(x):
    n = 200_000
    levels = assign.assign_hour(x, n, seed=5, hour=9)
    shares = np.bincount(levels, minlength=3) / n
    se = np.sqrt(np.asarray(x) * (1 - np.asarray(x)) / n)
    assert np.all(np.abs(shares - np.asarray(x)) <= 5 * se + 1e-12)


@pytest.mark.parametrize("x,u", [([0.0, 0.0], 0.5), ([-0.1, 1.1], 0.5), ([np.nan, 1], 0.5),
                                 ([0.5, 0.5], 1.0), ([0.5, 0.5], -0.1)])
def test_bad_mixes_and_draws_refused(x, u):
    with pytest.raises(SproutError):
        assign.pick_level(x, u)


def test_shape_mismatch_refused():
    with pytest.raises(SproutError):
        assign.assign_hour(np.ones((3, 2)), 4, seed=0, hour=0)
    with pytest.raises(SproutError):
        assign.level_stream(-1, 0)
