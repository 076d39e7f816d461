"""oi.pp.detect_scale: the summary of the stored values behind the scale checks."""

from __future__ import annotations

import numpy as np
import pytest

import osteoimmune as oi


def test_detect_scale_known_values():
    """Zeros, NaN and infinity are left out; whole numbers are counted exactly."""
    data = np.array([0.0, 1.0, 2.0, 2.5, np.nan, np.inf, -np.inf, 7.0, 0.25],
                    dtype=np.float32)
    r = oi.pp.detect_scale(data, n_rows=2, n_cols=10)
    # finite non-zero values: 1, 2, 2.5, 7, 0.25
    assert r.integer_fraction == 3 / 5
    assert (r.max, r.min) == (7.0, 0.25)
    assert r.zero_fraction == 1 - 5 / 20
    assert r.n_checked == 2
    empty = oi.pp.detect_scale(np.array([0.0, np.nan]), 1, 5)
    assert (empty.kind, empty.zero_fraction) == ("empty", 1.0)


@pytest.mark.parametrize(("values", "kind"), [
    (np.array([1, 3, 2, 40], dtype=np.int64), "counts"),
    (np.array([1.0, 3.0, 2.0, 40.0], dtype=np.float32), "counts"),
    (np.array([0.5, 1.2, -0.3]), "scaled"),
    (np.array([0.5, 75.3, 2.2]), "linear"),
    (np.array([0.5, 1.2, 3.3], dtype=np.float32), "log_normalized"),
    (np.array([True, True]), "log_normalized"),  # booleans: ones, not counts above 1
])
def test_detect_scale_kinds(values, kind):
    assert oi.pp.detect_scale(values, n_rows=1, n_cols=100).kind == kind


def test_detect_scale_log_intensity_is_dense():
    rng = np.random.default_rng(0)
    dense = rng.normal(8, 2, size=1000).clip(0.1)
    assert oi.pp.detect_scale(dense, n_rows=10, n_cols=100).kind == "log_intensity"
