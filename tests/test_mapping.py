"""The mapping compiler on model://: blocking, packing, scaling, bound management, compensation."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memxbar
from memxbar.mapping import Mapping

SMALL = "model://?rows=16&cols=12&lanes=4&physics=0"


def restated(cfg, weight, x, retries=3):
    """The mapping's result written out from the README's integer rules, one block at a time."""
    outs, ins = weight.shape
    y = np.zeros((len(x), outs))
    for in0 in range(0, ins, cfg.rows):
        for out0 in range(0, outs, cfg.cols):
            w = weight[out0:out0 + cfg.cols, in0:in0 + cfg.rows]
            s = cfg.g_max / np.abs(w).max()
            levels = np.round(np.clip(s * w, 0, None)) - np.round(np.clip(-s * w, 0, None))
            for n, v in enumerate(x[:, in0:in0 + cfg.rows]):
                peak = np.abs(v).max() or 1.0
                for attempt in range(retries + 1):
                    codes = np.round(v / (peak * 2**attempt) * cfg.x_max)
                    acc = (codes @ levels.T).astype(np.int64)
                    h = 1 << (cfg.adc_shift - 1) if cfg.adc_shift else 0
                    adc = np.clip(np.floor_divide(acc + h, 2**cfg.adc_shift), -cfg.y_max, cfg.y_max)
                    if not (np.abs(adc) >= cfg.y_max).any():
                        break
                y[n, out0:out0 + w.shape[0]] += adc * 2.0**cfg.adc_shift * peak * 2**attempt / (cfg.x_max * s)
    return y


def test_ideal_mapping_equals_the_restated_blocks():
    rng = np.random.default_rng(0)
    with memxbar.open(SMALL + "&tiles=7") as dev:
        mapping = Mapping(dev)
        weight, bias = rng.normal(size=(30, 40)), rng.normal(size=30)
        layer = mapping.add(weight, bias)
        assert len(layer.blocks) == 3 * 3  # 40 inputs over 16 rows, 30 outputs over 12 cols
        mapping.program()
        x = rng.normal(size=(25, 40))
        y = layer(x)
        assert np.allclose(y, restated(dev.info.config, weight, x) + bias, rtol=1e-12, atol=1e-12)
        assert layer(x[0]).shape == (30,)
        # and the quantised product is close to the float one
        exact = x @ weight.T + bias
        assert np.abs(y - exact).max() < 0.1 * np.abs(exact).max()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=6))
def test_blocks_cover_each_matrix_once_and_never_overlap(shapes):
    with memxbar.open(SMALL + "&tiles=64") as dev:
        cfg = dev.info.config
        mapping = Mapping(dev)
        used = {}
        for outs, ins in shapes:
            layer = mapping.add(np.ones((outs, ins)))
            covered = np.zeros((outs, ins), dtype=int)
            for b in layer.blocks:
                covered[b.out0:b.out0 + b.outs, b.in0:b.in0 + b.ins] += 1
                assert b.row0 + b.ins <= cfg.rows and b.col0 + b.outs <= cfg.cols
                cells = used.setdefault(b.page, np.zeros((cfg.cols, cfg.rows), dtype=int))
                cells[b.col0:b.col0 + b.outs, b.row0:b.row0 + b.ins] += 1
            assert (covered == 1).all()
        assert all((cells <= 1).all() for cells in used.values())


def test_small_matrices_share_one_tile_each_with_its_own_block():
    rng = np.random.default_rng(1)
    with memxbar.open(SMALL) as dev:
        mapping = Mapping(dev)
        layers = [mapping.add(rng.normal(size=shape)) for shape in [(6, 16), (5, 10), (4, 6)]]
        assert mapping.pages == 1
        mapping.program()
        for layer in layers:
            x = rng.normal(size=(7, layer.shape[1]))
            assert np.allclose(layer(x), restated(dev.info.config, layer.weight, x), rtol=1e-12, atol=1e-12)


def test_too_large_is_an_error_or_a_warned_reprogramming():
    rng = np.random.default_rng(2)
    weights = [rng.normal(size=(12, 16)) for _ in range(3)]
    x = rng.normal(size=(4, 16))
    with memxbar.open(SMALL + "&tiles=2") as dev:
        mapping = Mapping(dev)
        mapping.add(weights[0]), mapping.add(weights[1])
        with pytest.raises(ValueError, match=r"shape \(12, 16\) does not fit.*2 tile\(s\).*reprogram=True"):
            mapping.add(weights[2])
        paged = Mapping(dev, reprogram=True)
        paged.add(weights[0]), paged.add(weights[1])
        with pytest.warns(UserWarning, match="reprogrammed on demand"):
            third = paged.add(weights[2])
        paged.program()
        first = paged.layers[0]
        # page 2 replaces page 0 on tile 0 and back again: the results do not depend on it
        expected = [restated(dev.info.config, w, x) for w in weights]
        for _ in range(2):
            assert np.allclose(third(x), expected[2], rtol=1e-12, atol=1e-12)
            assert np.allclose(first(x), expected[0], rtol=1e-12, atol=1e-12)


def test_bound_management_retries_clipped_vectors():
    # all-positive weights and inputs: the column sums outgrow the ADC at full input range
    with memxbar.open("model://?rows=64&cols=8&lanes=8&physics=0&adc_shift=10") as dev:
        weight = np.ones((8, 64))
        x = np.ones((3, 64))
        exact = x @ weight.T
        results = {}
        for retries in (0, 3):
            mapping = Mapping(dev, bound_retries=retries)
            layer = mapping.add(weight)
            mapping.program()
            results[retries] = layer(x)
        assert np.abs(results[0] - exact).max() > 0.5 * exact.max()  # clipped at the rail
        assert np.abs(results[3] - exact).max() < 0.02 * exact.max()


def relative_error(layer, x, exact):
    return float(np.sqrt(np.mean((layer(x) - exact) ** 2)) / np.std(exact))


def test_drift_compensation_recovers_the_drifted_scale():
    rng = np.random.default_rng(3)
    with memxbar.open("model://") as dev:
        mapping = Mapping(dev, memxbar.PCM(), seed=5, read_noise="frozen")
        weight = rng.normal(size=(40, 64))
        layer = mapping.add(weight)
        mapping.program()
        mapping.drift(365 * 86400.0)
        x = rng.normal(size=(64, 64))
        exact = x @ weight.T
        errors = {}
        for compensation in memxbar.mapping.COMPENSATIONS:
            layer.compensation = compensation
            errors[compensation] = relative_error(layer, x, exact)
            # the drift scale itself: the least-squares gain of output on the exact product
            gain = float((layer(x) * exact).sum() / (exact * exact).sum())
            if compensation is None:
                assert gain < 0.7  # a year of PCM drift loses more than 30 % of the signal
            else:
                assert 0.85 < gain < 1.15, (compensation, gain)
        assert errors[None] > 0.3
        assert all(errors[c] < 0.7 * errors[None] for c in ("global", "column", "calibrated")), errors


def test_bad_input_names_the_problem():
    with memxbar.open(SMALL) as dev:
        mapping = Mapping(dev)
        with pytest.raises(ValueError, match="nothing to program"):
            mapping.program()
        with pytest.raises(ValueError, match=r"weight contains nan at index \(0, 1\)"):
            mapping.add([[0.0, np.nan]])
        with pytest.raises(ValueError, match="weight is empty"):
            mapping.add(np.zeros((0, 3)))
        with pytest.raises(ValueError, match="weight must be a 2-d array"):
            mapping.add(np.zeros(3))
        with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
            mapping.add(np.ones((2, 3)), bias=np.ones(3))
        with pytest.raises(ValueError, match="unknown compensation 'drift'"):
            mapping.add(np.ones((2, 3)), compensation="drift")
        layer = mapping.add(np.ones((2, 3)))
        with pytest.raises(ValueError, match="not programmed"):
            layer(np.ones(3))
        mapping.program()
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
            layer(np.ones(4))
        with pytest.raises(ValueError, match="x contains inf"):
            layer([1.0, np.inf, 0.0])
        with pytest.raises(ValueError, match="bound_retries"):
            Mapping(dev, bound_retries=-1)


def test_a_device_model_on_an_ideal_build_is_refused():
    with memxbar.open(SMALL) as dev:
        mapping = Mapping(dev, memxbar.PCM())
        mapping.add(np.ones((2, 3)))
        with pytest.raises(memxbar.Unsupported, match="ideal build"):
            mapping.program()


def test_no_warning_when_it_fits():
    with memxbar.open(SMALL) as dev, warnings.catch_warnings():
        warnings.simplefilter("error")
        Mapping(dev, reprogram=True).add(np.ones((12, 16)))
