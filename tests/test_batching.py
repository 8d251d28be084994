"""Batching is an implementation detail: sizes, adaptive sizing and cancellation keep the numbers."""

import numpy as np
import pytest
from conftest import small_cnn

from snnbalance.progress import Cancelled
from snnbalance.simulate import SimConfig, simulate


@pytest.fixture
def data():
    rng = np.random.default_rng(2)
    return rng.random((9, 1, 12, 12)).astype(np.float32), np.arange(9) % 5


def test_adaptive_batches_give_the_same_numbers(data):
    x, y = data
    fixed = simulate(small_cnn(), x, y, SimConfig(duration=20, batch_size=4))
    events = []
    adaptive = simulate(small_cnn(), x, y, SimConfig(duration=20, batch_size=4, batch_seconds=1e-6), progress=events.append)
    np.testing.assert_array_equal(fixed.accuracy_over_time, adaptive.accuracy_over_time)
    assert fixed.spike_counts == adaptive.spike_counts
    # a tiny time target means one image per batch: one progress event per image
    assert [e.completed for e in events] == list(range(1, 10))


def test_cancel_keeps_finished_images(data):
    x, y = data

    def stop_after_two(event):
        if event.completed >= 2:
            raise Cancelled

    r = simulate(small_cnn(), x, y, SimConfig(duration=20, batch_size=1), progress=stop_after_two)
    full = simulate(small_cnn(), x[:2], y[:2], SimConfig(duration=20))
    assert r.cancelled and r.samples == 2
    np.testing.assert_array_equal(r.accuracy_over_time, full.accuracy_over_time)
