"""The fast path of model:// (memxbar.fastmodel) against the golden model, bit for bit.

The oracle (memxbar.model.TileModel) is the specification; every case runs the same calls
on it and on the fast path, with the compiled noise kernel and with its numpy fallback, and
compares every output code, level and counter.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memxbar
from memxbar.fastmodel import FastTileModel, numba_kernel
from memxbar.model import TileModel
from memxbar.protocol import TileConfig, Window
from memxbar.protocol.physics import V_MAX, ReadNoise

KERNELS = [False] + ([True] if numba_kernel() is not None else [])


@st.composite
def devices(draw):
    kind = draw(st.sampled_from(["pcm", "rram", "ideal"]))
    options = {
        "stuck_on": draw(st.sampled_from([0.0, 0.05])), "stuck_off": draw(st.sampled_from([0.0, 0.1])),
        "out_noise": draw(st.sampled_from([0.0, 0.02, 0.06])),
        "verify_tolerance": draw(st.sampled_from([None, 0.5])),
        "levels": draw(st.sampled_from([None, 6])),
    }
    if kind == "pcm":
        return memxbar.PCM(**options)
    if kind == "rram":
        return memxbar.RRAM(**options)
    return memxbar.Ideal(**options)


@st.composite
def cases(draw):
    rows = draw(st.integers(1, 24))
    cols = draw(st.integers(1, 24))
    formats = {"g_bits": draw(st.integers(2, 8)), "dac_bits": draw(st.integers(2, 9))}
    acc_width = TileConfig(rows=rows, cols=cols, lanes=1, **formats).acc_width
    per_read = draw(st.booleans())
    cfg = TileConfig(rows=rows, cols=cols, lanes=draw(st.integers(1, cols)), **formats,
                     adc_bits=draw(st.integers(2, 14)), adc_shift=draw(st.integers(0, acc_width - 1)),
                     per_read_noise=per_read)
    mode = ReadNoise.PER_READ if per_read and draw(st.booleans()) else ReadNoise.FROZEN
    row0 = draw(st.integers(0, rows - 1))
    col0 = draw(st.integers(0, cols - 1))
    window = Window(row0, draw(st.integers(1, rows - row0)), col0, draw(st.integers(1, cols - col0)))
    return {
        "config": cfg, "device": draw(devices()), "seed": draw(st.integers(0, 2**32 - 1)), "mode": mode,
        "times": draw(st.lists(st.sampled_from([0.0, 1.0, 3600.0, 86400.0 * 365]), max_size=2)),
        "window": window, "batches": draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)),
        "read_index": draw(st.one_of(st.none(), st.integers(0, 2**32 - 10))),
        "data": draw(st.integers(0, 2**32 - 1)),
    }


def run_both(case, use_numba):
    cfg, device = case["config"], case["device"]
    rng = np.random.default_rng(case["data"])
    models = [TileModel(cfg), FastTileModel(cfg, use_numba=use_numba)]
    g_plus, g_minus = rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows))
    tables = device.compile_program(cfg), device.compile_drift(cfg, 0.0)
    for model in models:
        model.configure(case["seed"], case["mode"], *tables)
        model.program_levels(g_plus, g_minus)
    results = [[] for _ in models]
    window = case["window"]
    for step, t in enumerate([None, *case["times"]]):
        for model in models:
            if t is not None:
                model.drift(device.compile_drift(cfg, t))
        for batch in case["batches"]:
            x = rng.integers(-cfg.x_max, cfg.x_max + 1, (batch, window.rows))
            index = None if case["read_index"] is None or step else case["read_index"]
            oracle, fast = models
            results[0].append(window.outputs(oracle.run_codes(window.pad(cfg, x), index)))
            results[1].append(fast.run_codes(x, index, window=window))
            results[0].append(oracle.run_codes(window.pad(cfg, x)))  # the full array, next index
            results[1].append(fast.run_codes(window.pad(cfg, x)))
    return models, results


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from(KERNELS))
def test_fast_path_is_the_oracle_bit_for_bit(case, use_numba):
    (oracle, fast), (expected, got) = run_both(case, use_numba)
    for want, have in zip(expected, got, strict=True):
        assert have.dtype == np.int64
        assert np.array_equal(want, have)
    assert all(np.array_equal(a, b) for a, b in zip(oracle.levels(), fast.levels(), strict=True))
    assert oracle.counters == fast.counters and oracle.reads == fast.reads


@pytest.mark.parametrize("use_numba", KERNELS)
@pytest.mark.parametrize("shape", [(4096, 3, 16, 20), (200, 5, 9, 8)])
def test_exact_at_the_largest_sums(shape, use_numba):
    """Full-scale inputs, weights and variances: the sums float64 must hold (up to 2**52)."""
    rows, cols, dac_bits, adc_shift = shape
    cfg = TileConfig(rows=rows, cols=cols, lanes=1, g_bits=8, dac_bits=dac_bits, adc_bits=24,
                     adc_shift=adc_shift)
    device = memxbar.PCM(out_noise=0.0005)  # the most a 16-bit DAC tile takes
    models = [TileModel(cfg), FastTileModel(cfg, use_numba=use_numba)]
    g_plus = np.full((cols, rows), cfg.g_max)
    g_plus[0] = 0  # one column of the other sign
    g_minus = cfg.g_max - g_plus
    x = np.array([[cfg.x_max] * rows, [-cfg.x_max] * rows, [cfg.x_max, -cfg.x_max] * (rows // 2)])
    outputs = []
    for model in models:
        model.configure(9, ReadNoise.PER_READ, device.compile_program(cfg), device.compile_drift(cfg, 0.0))
        model.program_levels(g_plus, g_minus)
        model.variance[:] = V_MAX  # the largest variance code on every cell (state as the engine leaves it)
        outputs.append(model.run_codes(x, 7))
    assert np.array_equal(*outputs)
    assert models[1]._var_float is np.float64 and np.abs(outputs[0]).max() > 2**14


def test_model_url_runs_the_fast_path():
    with memxbar.open("model://?rows=8&cols=8") as dev:
        assert isinstance(dev._backend._models[0], FastTileModel)


def test_matvec_takes_any_leading_shape_and_shares_the_mappings_scaling():
    from memxbar.mapping import Mapping

    rng = np.random.default_rng(3)
    w = rng.normal(size=(10, 12))
    x = rng.normal(size=(2, 3, 12))
    with memxbar.open("model://?rows=16&cols=16") as dev, memxbar.open("model://?rows=16&cols=16") as twin:
        tile = dev.tile(0)
        tile.program(w)
        y = tile.matvec(x)
        assert y.shape == (2, 3, 10)
        assert np.array_equal(y.reshape(6, 10), tile.matvec(x.reshape(6, 12)))
        layer = Mapping(twin, bound_retries=0).add(w)
        layer.mapping.program()
        assert np.array_equal(layer(x), y)  # one scaling implementation, the same floats
