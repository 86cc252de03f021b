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
from memxbar import mapping
from memxbar.fastmodel import SMALL_BATCH, FastTileModel, numba_kernel
from memxbar.mapping import scaled_mvm
from memxbar.model import TileModel
from memxbar.protocol import TileConfig, Window, lane_memory
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
        "window": window,
        # up to SMALL_BATCH the compiled kernel does the sums too; above, BLAS and the noise kernel
        "batches": draw(st.lists(st.one_of(st.integers(1, 6), st.sampled_from([33, 300])), min_size=1,
                                 max_size=3)),
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
        # 3 MVMs: the small-batch kernel's int64 sums; 9: BLAS's float64 ones
        outputs.append(np.vstack([model.run_codes(x, 7), model.run_codes(np.vstack([x] * 3), 7)]))
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


@pytest.mark.parametrize("use_numba", KERNELS)
@pytest.mark.parametrize("mode", [ReadNoise.PER_READ, ReadNoise.FROZEN])
def test_the_default_tile_at_large_batches(mode, use_numba):
    """The benchmark's case: a 64x64 PCM tile, batches past OpenBLAS's threading threshold."""
    cfg = TileConfig()
    device = memxbar.PCM()
    rng = np.random.default_rng(5)
    g_plus, g_minus = rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows))
    models = [TileModel(cfg), FastTileModel(cfg, use_numba=use_numba)]
    outputs = []
    for model in models:
        model.configure(4, mode, device.compile_program(cfg), device.compile_drift(cfg, 0.0))
        model.program_levels(g_plus, g_minus)
        model.drift(device.compile_drift(cfg, 3600.0))
    assert models[1]._var_float is np.float64  # the default tile's variance sums need float64
    for batch in (SMALL_BATCH, SMALL_BATCH + 1, 700):
        x = rng.integers(-cfg.x_max, cfg.x_max + 1, (batch, cfg.rows))
        x[0] = cfg.x_max  # full scale: the largest sums
        outputs.append([model.run_codes(x) for model in models])
    for want, have in outputs:
        assert np.array_equal(want, have)


@pytest.fixture(params=["numba", "numpy"] if numba_kernel() is not None else ["numpy"])
def scaling(request, monkeypatch):
    """scaled_mvm with its compiled kernels or with numpy alone."""
    if request.param == "numpy":
        monkeypatch.setattr(mapping, "_compiled", [None])
    return request.param


def _scaled_both(x, scale, cfg, retries, seed):
    """scaled_mvm on both paths with the same pseudo-ADC; the codes each run saw and the floats."""
    weights = np.random.default_rng(seed).integers(-cfg.g_max, cfg.g_max + 1, (x.shape[1], 5))
    results = []
    for kernels in (mapping._scale_kernels(), None):
        seen = []

        def run(codes, seen=seen):
            seen.append(codes.copy())
            assert codes.dtype == np.int64 and np.abs(codes).max(initial=0) <= cfg.x_max
            return np.clip((codes @ weights) >> cfg.adc_shift, -cfg.y_max, cfg.y_max)

        saved = mapping._compiled[:]
        mapping._compiled[:] = [kernels]
        try:
            results.append((seen, scaled_mvm(run, x, scale, cfg, retries)))
        finally:
            mapping._compiled[:] = saved
    return results


# magnitudes whose scale factor x_max / peak stays finite (a subnormal peak overflows it on both paths)
finite = st.one_of(st.sampled_from([0.0, -0.0, 0.5, -2.5]), st.floats(1e-300, 1e300),
                   st.floats(-1e300, -1e-300))


@pytest.mark.skipif(mapping._scale_kernels() is None, reason="no compiled scaling (numba missing or "
                    "MEMXBAR_NUMBA=0): nothing to compare")
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.data(), st.integers(0, 3), st.integers(0, 2**32 - 1),
       st.integers(2, 9), st.floats(1e-3, 1e3))
def test_compiled_scaling_is_numpys_bit_for_bit(batch, n, data, retries, seed, dac_bits, scale):
    """Noise and bound management compiled: the same codes reach the tile, the same floats return."""
    cfg = TileConfig(rows=n, cols=5, lanes=1, dac_bits=dac_bits, adc_bits=data.draw(st.integers(2, 9)))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, n)) * 10.0 ** rng.integers(-290, 290, (batch, 1))
    x[rng.random((batch, n)) < 0.2] = 0.0  # zeros, and rows of zeros
    x[rng.random(batch) < 0.2] = 0.0
    picked = data.draw(st.lists(st.tuples(st.integers(0, batch - 1), st.integers(0, n - 1), finite),
                                max_size=4))
    for b, i, value in picked:  # subnormals, huge values, -0.0, exact halves
        x[b, i] = value
    (seen_c, y_c), (seen_n, y_n) = _scaled_both(x, scale, cfg, retries, seed)
    assert len(seen_c) == len(seen_n)
    assert all(np.array_equal(a, b) for a, b in zip(seen_c, seen_n, strict=True))
    assert y_c.dtype == y_n.dtype == np.float64
    assert np.array_equal(y_c.view(np.int64), y_n.view(np.int64))  # every bit, zeros' signs too


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_matvec_names_a_non_finite_input_and_runs_nothing(bad, scaling):
    with memxbar.open("model://?rows=8&cols=8") as dev:
        tile = dev.tile(0)
        tile.configure(memxbar.PCM(), seed=3)
        tile.program(np.ones((4, 6)))
        x = np.ones((2, 3, 6))
        x[1, 2, 4] = bad
        before = tile.indices, dict(tile.counters())
        with pytest.raises(ValueError, match=rf"x contains {bad} at index \(1, 2, 4\)"):
            tile.matvec(x)
        assert (tile.indices, tile.counters()) == before


def test_layer_names_a_non_finite_input_and_runs_nothing(scaling):
    """One block checks the inputs as it scales them; several check them before the first runs."""
    with memxbar.open("model://?rows=8&cols=8&tiles=2") as dev:
        mapping_ = memxbar.Mapping(dev, memxbar.PCM(), seed=3)
        small, wide = mapping_.add(np.ones((3, 5))), mapping_.add(np.ones((3, 12)))
        mapping_.program()
        assert len(small.blocks) == 1 and len(wide.blocks) == 2
        for layer, ins in ((small, 5), (wide, 12)):
            x = np.ones((4, ins))
            x[3, ins - 1] = np.nan
            before = mapping_.indices(), dict(layer.events)
            with pytest.raises(ValueError, match=rf"x contains nan at index \(3, {ins - 1}\)"):
                layer(x)
            assert (mapping_.indices(), layer.events) == before


@pytest.mark.parametrize("batch", [1, SMALL_BATCH + 1, 700])
def test_matvec_is_the_oracle_scaled(batch, scaling):
    """Tile.matvec on model:// is numpy's scaled_mvm around the oracle's run_codes, bit for bit."""
    rng = np.random.default_rng(batch)
    w = rng.normal(size=(40, 50))
    x = rng.normal(size=(batch, 50))
    with memxbar.open("model://") as dev:
        tile = dev.tile(0)
        tile.configure(memxbar.PCM(), seed=11, read_noise="per_read")
        tile.program(w)
        tile.drift(86400.0)
        got = tile.matvec(x)
    cfg = TileConfig()
    oracle = TileModel(cfg)
    device = memxbar.PCM()
    oracle.configure(11, ReadNoise.PER_READ, device.compile_program(cfg), device.compile_drift(cfg, 0.0))
    g_plus, g_minus = np.zeros((2, cfg.cols, cfg.rows), dtype=np.int64)
    g_plus[:40, :50], g_minus[:40, :50], scale = mapping.differential_levels(w, device.target_max(cfg))
    oracle.program_levels(g_plus, g_minus, 0)
    oracle.drift(device.compile_drift(cfg, 86400.0), 1)
    window = Window(0, 50, 0, 40)
    saved = mapping._compiled[:]
    mapping._compiled[:] = [None]
    try:
        want = scaled_mvm(lambda codes: window.outputs(oracle.run_codes(window.pad(cfg, codes))), x, scale,
                          cfg)
    finally:
        mapping._compiled[:] = saved
    assert np.array_equal(got, want)


@pytest.mark.parametrize("use_numba", KERNELS)
@pytest.mark.parametrize("column_sum", [(2**24 - 1) // 63**2, (2**24 - 1) // 63**2 + 1])
def test_variance_sums_in_float32_only_below_2_24(column_sum, use_numba):
    """The cells' variances pick float32 for the per-read sums when they bound them below 2**24."""
    cfg = TileConfig()
    device = memxbar.PCM()
    models = [TileModel(cfg), FastTileModel(cfg, use_numba=use_numba)]
    rng = np.random.default_rng(column_sum)
    g_plus, g_minus = rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows))
    variance = np.full((cfg.cols, cfg.rows), column_sum // cfg.rows)
    variance[:, : column_sum % cfg.rows] += 1  # every column sums to column_sum exactly
    x = np.array([[cfg.x_max] * cfg.rows, [-cfg.x_max] * cfg.rows, [cfg.x_max, -cfg.x_max] * (cfg.rows // 2)])
    outputs = []
    for model in models:
        model.configure(2, ReadNoise.PER_READ, device.compile_program(cfg), device.compile_drift(cfg, 0.0))
        model.program_levels(g_plus, g_minus)
        model.variance[:] = lane_memory(cfg, variance, variance)[..., 0]  # the engine's state
        outputs.append(model.run_codes(np.vstack([x] * 3), 5))
    assert np.array_equal(*outputs)
    below = column_sum * cfg.x_max**2 < 2**24
    assert models[1]._matrices().variances.dtype == (np.float32 if below else np.float64)
