"""The float API (configure, program, drift, conductances, matvec, counters) on model://."""

import numpy as np
import pytest

import memxbar


@pytest.fixture
def dev():
    with memxbar.open("model://?rows=16&cols=12&lanes=4") as d:
        yield d


def test_ideal_matvec_is_the_quantised_product(dev):
    rng = np.random.default_rng(1)
    tile = dev.tile(0)
    w = rng.normal(size=(10, 14))
    tile.program(w)
    x = rng.normal(size=(50, 14))
    y = tile.matvec(x)
    assert y.shape == (50, 10) and tile.matvec(x[0]).shape == (10,)
    exact = x @ w.T
    # 8-bit weights, 7-bit inputs, 9-bit ADC: a few percent of the output range
    assert np.abs(y - exact).max() < 0.05 * np.abs(exact).max()
    g_plus, g_minus = tile.conductances()
    assert g_plus.shape == w.shape
    assert np.allclose(g_plus - g_minus, w / np.abs(w).max() * 25.0, atol=25.0 / 255)


def test_same_seed_same_numbers_other_seed_other_numbers(dev):
    rng = np.random.default_rng(2)
    w, x = rng.normal(size=(12, 16)), rng.normal(size=(8, 16))

    def run(seed, mode):
        tile = dev.tile(0)
        tile.configure(memxbar.PCM(), seed=seed, read_noise=mode)
        tile.program(w)
        tile.drift(3600.0)
        return tile.matvec(x), tile.conductances()

    for mode in ("per_read", "frozen"):
        (y1, g1), (y2, g2), (y3, _) = run(7, mode), run(7, mode), run(8, mode)
        assert np.array_equal(y1, y2) and np.array_equal(g1[0], g2[0])
        assert not np.array_equal(y1, y3)


def test_batch_size_does_not_change_results(dev):
    rng = np.random.default_rng(3)
    w, x = rng.normal(size=(12, 16)), rng.normal(size=(9, 16))
    tile = dev.tile(0)
    tile.configure(memxbar.PCM(), seed=1)
    tile.program(w)
    together = tile.matvec(x)
    tile.configure(memxbar.PCM(), seed=1)
    tile.program(w)
    one_by_one = np.stack([tile.matvec(v) for v in x])
    assert np.array_equal(together, one_by_one)


def test_stuck_cells_from_a_mask_and_from_rates(dev):
    tile = dev.tile(0)
    cfg = tile.config
    stuck = np.zeros((2, cfg.cols, cfg.rows), dtype=int)
    stuck[0, 3, 4] = 1
    stuck[1, 5, 6] = 2
    tile.configure(memxbar.Ideal(), stuck=stuck)
    tile.program_levels(np.zeros((cfg.cols, cfg.rows), int), np.full((cfg.cols, cfg.rows), 100))
    g_plus, g_minus = tile.conductances()
    assert g_plus[3, 4] == pytest.approx(25.0) and (np.delete(g_plus.ravel(), 3 * cfg.rows + 4) == 0).all()
    assert g_minus[5, 6] == 0 and (np.delete(g_minus.ravel(), 5 * cfg.rows + 6) > 9).all()

    with memxbar.open("model://?rows=64&cols=64&lanes=8") as big:
        tile = big.tile(0)
        tile.configure(memxbar.Ideal(stuck_on=0.01, stuck_off=0.02), seed=4)
        tile.program_levels(np.full((64, 64), 128), np.full((64, 64), 128))
        g = np.stack(tile.conductances()) / 25.0 * 255
        on, off = (g == 255).mean(), (g == 0).mean()
        print(f"stuck on {on:.4f} (0.01), stuck off {off:.4f} (0.02) over 8192 devices")
        assert abs(on - 0.01) < 0.004 and abs(off - 0.02) < 0.005


def test_write_verify_tightens_programming_and_counts_pulses():
    with memxbar.open("model://?rows=64&cols=64&lanes=8") as dev:
        tile = dev.tile(0)
        w = np.full((64, 64), 0.6)
        tile.configure(memxbar.PCM(), seed=9)
        tile.program(w)
        plain = tile.conductances()[0].std()
        before = dev.counters()
        tile.configure(memxbar.PCM(verify_tolerance=0.3, verify_max=10), seed=9)
        tile.program(w)
        verified = tile.conductances()[0].std()
        after = dev.counters()
        pulses = after["write_pulses"] - before["write_pulses"]
        reads = after["verify_reads"] - before["verify_reads"]
        print(f"write-verify: sigma {plain:.3f} -> {verified:.3f} uS, {pulses / 8192:.2f} pulses per device")
        assert verified < 0.5 * plain
        assert pulses > 8192 and reads >= 4096  # G- targets 0: within tolerance at once, mostly
        assert after["cell_writes"] - before["cell_writes"] == 4096


def test_counters_count_events(dev):
    tile = dev.tile(0)
    cfg = tile.config
    tile.program(np.eye(12, 16))
    tile.matvec(np.ones((5, 16)))
    c = dev.counters()
    assert set(c) == {"cycles", "mvms", "macs", "adc_conversions", "cell_writes", "verify_reads",
                      "write_pulses"}
    assert c["mvms"] == 5 and c["macs"] == 5 * cfg.rows * cfg.cols and c["adc_conversions"] == 5 * cfg.cols
    assert c["cycles"] == 5 * cfg.rows * cfg.groups
    assert c["cell_writes"] == cfg.lanes * cfg.words_per_lane and c["write_pulses"] == 2 * c["cell_writes"]
    assert tile.counters()["mvms"] == 5


@pytest.mark.parametrize(("call", "message"), [
    (lambda t: t.configure(memxbar.PCM(), read_noise="sometimes"), r"unknown read_noise mode 'sometimes'"),
    (lambda t: t.configure(memxbar.PCM(), seed=-1), r"seed must be an integer in \[0, 2\*\*32\)"),
    (lambda t: t.configure(memxbar.PCM(), seed=2**32), r"seed must be an integer"),
    (lambda t: t.configure("pcm"), r"model must be a memxbar.DeviceModel"),
    (lambda t: t.drift(-1.0), r"t must be a finite time >= 0"),
    (lambda t: t.drift(float("nan")), r"t must be a finite time >= 0"),
    (lambda t: t.program(np.full((3, 3), np.nan)), r"weights contains nan at index \(0, 0\)"),
    (lambda t: t.program(np.ones((13, 4))), r"weights of shape \(13, 4\) do not fit"),
    (lambda t: t.program(np.ones(4)), r"weights must be a 2-d array"),
    (lambda t: t.program(np.ones((0, 4))), r"weights is empty"),
    (lambda t: t.matvec(np.ones(3)), r"call tile.program\(W\) first"),
    (lambda t: t.configure(memxbar.PCM(), stuck=np.full((2, 12, 16), 3)), r"stuck\[0, 0, 0\] = 3"),
    (lambda t: t.configure(memxbar.DeviceModel(prog_sigma=lambda g: 1e9 + 0 * g)),
     r"prog_sigma .* too large"),
    (lambda t: memxbar.PCM(g_max=-1), r"g_max must be > 0"),
    (lambda t: memxbar.RRAM(stuck_on=1.5), r"stuck_on is a probability"),
])
def test_bad_input_names_the_problem(dev, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(dev.tile(0))


def test_matvec_checks_shape_and_values(dev):
    tile = dev.tile(0)
    tile.program(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 5\), got \(6,\)"):
        tile.matvec(np.ones(6))
    with pytest.raises(ValueError, match=r"x contains inf at index \(1,\)"):
        tile.matvec(np.array([0, np.inf, 0, 0, 0]))
    assert np.array_equal(tile.matvec(np.zeros(5)), np.zeros(4))


def test_a_build_without_per_read_lanes_is_the_full_build_in_frozen_mode():
    """Dropping the per-read lanes changes the build id and nothing the frozen mode computes."""
    rng = np.random.default_rng(5)
    w, x = rng.normal(size=(7, 10)), rng.normal(size=(4, 10))
    small = memxbar.open("model://?rows=10&cols=7&lanes=3&per_read_noise=0")
    full = memxbar.open("model://?rows=10&cols=7&lanes=3")
    assert small.info.build_id != full.info.build_id
    with pytest.raises(memxbar.Unsupported, match="without per-read noise lanes"):
        small.tile(0).configure(memxbar.PCM(), read_noise="per_read")
    outputs = []
    for dev, mode in ((small, None), (full, "frozen")):
        tile = dev.tile(0)
        tile.configure(memxbar.PCM(), seed=9, read_noise=mode)
        tile.program(w)
        tile.drift(3600.0)
        outputs.append((tile.conductances(), tile.matvec(x)))
    assert np.array_equal(outputs[0][0], outputs[1][0])
    assert np.array_equal(outputs[0][1], outputs[1][1])


def test_reprogramming_a_drifted_tile_starts_again_at_t0(dev):
    cfg = dev.info.config
    tile = dev.tile(0)
    tile.configure(memxbar.PCM(), seed=3)
    targets = np.full((cfg.cols, cfg.rows), 150)
    tile.program_levels(targets, 0 * targets)
    tile.drift(365 * 86400.0)
    drifted = tile.conductances()[0].mean()
    tile.program_levels(targets, 0 * targets)
    fresh = tile.conductances()[0].mean()
    lsb = tile.model.lsb(cfg)
    assert tile.time == 0.0
    assert drifted < 0.7 * 150 * lsb  # a year of drift
    assert abs(fresh - 150 * lsb) < 0.05 * 150 * lsb  # the new cells are read undrifted
