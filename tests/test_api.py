"""memxbar.open("model://") as a user meets it: shapes, results, and errors that name the problem."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memxbar
from memxbar.model import mvm_codes
from memxbar.protocol import Window


@pytest.fixture
def dev():
    with memxbar.open("model://?rows=6&cols=5&lanes=2&g_bits=4&dac_bits=5&adc_bits=8&tiles=2") as d:
        yield d


def random_levels(cfg, rng):
    shape = (cfg.cols, cfg.rows)
    return rng.integers(0, cfg.g_max + 1, shape), rng.integers(0, cfg.g_max + 1, shape)


def test_info_reports_geometry_and_build_id(dev):
    info = dev.info
    assert (info.backend, info.tiles, info.rows, info.cols, info.lanes) == ("model", 2, 6, 5, 2)
    assert (info.g_bits, info.dac_bits, info.adc_bits) == (4, 5, 8)
    assert info.build_id == info.config.build_id
    assert memxbar.open("model://").info.build_id != info.build_id


def test_program_and_run_follow_linear_layer_shapes(dev):
    rng = np.random.default_rng(0)
    tile = dev.tile(1)
    cfg = tile.config
    g_plus, g_minus = random_levels(cfg, rng)
    tile.program_levels(g_plus, g_minus)
    x = rng.integers(-cfg.x_max, cfg.x_max + 1, (3, 4, cfg.rows))
    y = tile.run_codes(x)
    assert y.shape == (3, 4, cfg.cols)
    assert np.array_equal(y, mvm_codes(cfg, g_plus, g_minus, x))
    assert tile.run_codes(x[0, 0]).shape == (cfg.cols,)
    assert tile.run_codes(x[0, 0].tolist()).tolist() == y[0, 0].tolist()


def test_a_window_is_the_padded_full_mvm(dev):
    rng = np.random.default_rng(5)
    tile = dev.tile(0)
    cfg = tile.config
    g_plus, g_minus = random_levels(cfg, rng)
    tile.program_levels(g_plus, g_minus)
    x = rng.integers(-cfg.x_max, cfg.x_max + 1, (7, 3))  # rows 2..4
    padded = np.zeros((7, cfg.rows), dtype=int)
    padded[:, 2:5] = x
    assert np.array_equal(tile.run_codes(x, (2, 3, 1, 4)), mvm_codes(cfg, g_plus, g_minus, padded)[:, 1:5])
    assert tile.run_codes(x[0], Window(2, 3, 1, 4)).shape == (4,)


@pytest.mark.parametrize(("window", "message"), [
    ((0, 0, 0, 1), r"window rows 0\.\.-1 are not inside the tile's rows 0\.\.5"),
    ((4, 3, 0, 1), r"window rows 4\.\.6 are not inside"),
    ((0, 1, 2, 4), r"window cols 2\.\.5 are not inside the tile's cols 0\.\.4"),
    ((-1, 1, 0, 1), "window row0 must be a non-negative integer, not -1"),
    ((0, 1.0, 0, 1), "window rows must be a non-negative integer, not 1.0"),
])
def test_bad_windows_are_named(dev, window, message):
    with pytest.raises(ValueError, match=message):
        dev.tile(0).run_codes(np.zeros(max(int(window[1]), 1), dtype=int), window)


def test_tiles_hold_their_own_levels(dev):
    cfg = dev.info.config
    ones = np.ones((cfg.cols, cfg.rows), dtype=int)
    dev.tile(0).program_levels(ones, 0 * ones)
    x = np.full(cfg.rows, cfg.x_max)
    assert (dev.tile(0).run_codes(x) > 0).all()
    assert (dev.tile(1).run_codes(x) == 0).all()  # never programmed: all levels 0


@pytest.mark.parametrize(("x", "message"), [
    (np.zeros(7, dtype=int), r"x_codes must have shape \(\.\.\., 6\), got \(7,\)"),
    (np.zeros(6), r"x_codes must hold integer codes, got dtype float64"),
    (np.array([0, 1, np.nan, 0, 0, 0]), r"x_codes contains NaN at index \(2,\)"),
    (np.array([0, 0, 0, 0, -16, 0]), r"x_codes\[4\] = -16 is outside \[-15, 15\]"),
    (np.array([[0] * 6, [0, 16, 0, 0, 0, 0]]), r"x_codes\[1, 1\] = 16 is outside"),
    ([[0] * 6, [0] * 5], r"x_codes is not an array|ragged"),
    (np.array([True] * 6), r"x_codes must hold integer codes, got dtype bool"),
    (3, r"x_codes must have shape \(\.\.\., 6\), got \(\)"),
])
def test_bad_inputs_raise_value_error_naming_the_problem(dev, x, message):
    with pytest.raises(ValueError, match=message):
        dev.tile(0).run_codes(x)


@pytest.mark.parametrize(("which", "value", "message"), [
    ("g_plus", np.zeros((6, 5), dtype=int), r"g_plus must have shape \(5, 6\), got \(6, 5\)"),
    ("g_minus", np.full((5, 6), 16), r"g_minus\[0, 0\] = 16 is outside \[0, 15\]"),
    ("g_plus", np.full((5, 6), -1), r"g_plus\[0, 0\] = -1 is outside"),
    ("g_plus", np.full((5, 6), 1.0), r"g_plus must hold integer codes, got dtype float64"),
])
def test_bad_levels_raise_value_error_naming_the_problem(dev, which, value, message):
    args = {"g_plus": np.zeros((5, 6), dtype=int), "g_minus": np.zeros((5, 6), dtype=int)}
    args[which] = value
    with pytest.raises(ValueError, match=message):
        dev.tile(0).program_levels(**args)


def test_rejected_levels_leave_the_tile_unchanged(dev):
    cfg = dev.info.config
    tile = dev.tile(0)
    ones = np.ones((cfg.cols, cfg.rows), dtype=int)
    tile.program_levels(ones, 0 * ones)
    before = tile.run_codes(np.full(cfg.rows, 3))
    with pytest.raises(ValueError):
        tile.program_levels(ones * 3, np.full((cfg.cols, cfg.rows), 99))
    assert np.array_equal(tile.run_codes(np.full(cfg.rows, 3)), before)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-40, 40), min_size=0, max_size=9))
def test_any_input_either_runs_exactly_or_is_refused(values):
    with memxbar.open("model://?rows=6&cols=5&lanes=2&g_bits=4&dac_bits=5&adc_bits=8") as dev:
        tile = dev.tile(0)
        legal = len(values) == 6 and all(abs(v) <= 15 for v in values)
        if legal:
            assert tile.run_codes(values).shape == (5,)
        else:
            with pytest.raises(ValueError):
                tile.run_codes(values)


def test_tile_index_and_closed_device():
    dev = memxbar.open("model://")
    with pytest.raises(ValueError, match=r"tile 1 does not exist: the device has 1 tile"):
        dev.tile(1)
    tile = dev.tile(0)
    dev.close()
    with pytest.raises(memxbar.DeviceClosed, match="the device is closed"):
        tile.run_codes(np.zeros(64, dtype=int))


@pytest.mark.parametrize(("url", "message"), [
    ("sim://?colour=5", r"unknown parameter .colour."),
    ("xyz://nowhere", r"cannot open 'xyz://nowhere': .*protocol 'xyz' not known"),
    ("model://?rows=ten", r"parameter rows='ten' .* is not an integer"),
    ("model://?colour=red", r"unknown parameter 'colour'"),
    ("model://?lanes=65", r"lanes must be in \[1, 64\], not 65"),
    ("model://?tiles=0", r"tiles must be in \[1, 64\], not 0"),
])
def test_bad_urls(url, message):
    with pytest.raises(ValueError, match=message):
        memxbar.open(url)
