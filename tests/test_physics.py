"""The PCM model on model:// against aihwkit's equations, over 64x64 cells at several levels.

The expected values come from the equations in ARCHITECTURE.md (aihwkit's PCMLikeNoiseModel),
computed here in floats; the tile computes them with integer tables and its own noise.
"""

from math import log, sqrt

import numpy as np
import pytest

import memxbar
from memxbar.protocol.physics import ReadNoise

G_MAX = 25.0
LEVELS_US = (5.0, 10.0, 15.0, 20.0, 25.0)  # targets far enough from 0 that clipping is negligible
T0, T_READ = 20.0, 250e-9


def pcm_sigma_prog(g):
    x = g / G_MAX
    return (0.26348 + 1.9650 * x - 1.1731 * x * x) * G_MAX / 25


def pcm_nu(g):
    x = max(g / G_MAX, 1e-7)
    return (min(max(-0.0155 * log(x) + 0.0244, 0.049), 0.1),
            min(max(-0.0125 * log(x) - 0.0059, 0.008), 0.045))


def expected_drift_factor(g, t):
    """E[(t'/t0)**-nu] for nu = |N(mu, sigma)|, by quadrature over the folded normal."""
    mu, sigma = pcm_nu(g)
    nu = np.linspace(mu - 8 * sigma, mu + 8 * sigma, 20001)
    weight = np.exp(-0.5 * ((nu - mu) / sigma) ** 2)
    factor = ((t + T0) / T0) ** -np.abs(nu)
    return float((weight * factor).sum() / weight.sum())


def pcm_read_sigma_rel(g_prog, t):
    q_s = np.minimum(0.0088 / np.maximum((g_prog / G_MAX) ** 0.65, 1e-3), 0.2)
    return q_s * sqrt(log((t + T0 + T_READ) / (2 * T_READ)))


def uniform_weights(tile, g_target):
    """A (64, 64) matrix whose positive cells all map to ``g_target`` uS (G- = 0)."""
    top = tile.model.target_max(tile.config)
    lsb = tile.model.lsb(tile.config)
    level = round(g_target / lsb)
    return np.full((64, 64), level / top), level * lsb  # max|W| = 1 ... scaled by level/top


def program_level(tile, g_target):
    w, g_quantised = uniform_weights(tile, g_target)
    w[0, 0] = 1.0  # fixes s = g_max / max|W|, so the other cells land on g_target
    tile.program(w)
    return g_quantised


@pytest.fixture
def tile():
    with memxbar.open("model://?rows=64&cols=64&lanes=8") as dev:
        yield dev.tile(0)


@pytest.mark.parametrize("read_noise", ["per_read", "frozen"])
@pytest.mark.parametrize("g_target", LEVELS_US)
def test_programming_noise_std(tile, g_target, read_noise):
    # a seed per level: independent samples
    tile.configure(memxbar.PCM(), seed=int(g_target), read_noise=read_noise)
    g_quantised = program_level(tile, g_target)
    g_plus, _ = tile.conductances()  # before any drift call: the programmed conductances
    measured = g_plus.ravel()[1:].std()
    expected = pcm_sigma_prog(g_quantised)
    print(f"{g_target} uS: sigma_prog {measured:.4f} uS, equation {expected:.4f}")
    assert abs(measured / expected - 1) < 0.05


@pytest.mark.parametrize("t", [3600.0, 86400.0])
@pytest.mark.parametrize("g_target", LEVELS_US)
def test_mean_drift_factor(tile, g_target, t):
    tile.configure(memxbar.PCM(), seed=12)
    g_quantised = program_level(tile, g_target)
    g_prog = tile.conductances()[0].ravel()[1:]
    tile.drift(t)
    g_drift = tile.conductances()[0].ravel()[1:]
    measured = g_drift.mean() / g_prog.mean()
    expected = expected_drift_factor(g_quantised, t)
    print(f"{g_target} uS, t={t:.0f} s: drift factor {measured:.4f}, E[(t'/t0)^-nu] {expected:.4f}")
    assert abs(measured / expected - 1) < 0.02


def test_drift_continues_each_cells_trajectory(tile):
    """Drift is a function of the time since programming: 1 h then 1 day equals 1 day directly."""
    tile.configure(memxbar.PCM(), seed=3)
    program_level(tile, 15.0)
    tile.drift(3600.0)
    one_hour = tile.conductances()[0]
    tile.drift(86400.0)
    via_one_hour = tile.conductances()[0]
    tile.configure(memxbar.PCM(), seed=3)
    program_level(tile, 15.0)
    tile.drift(86400.0)
    assert np.array_equal(tile.conductances()[0], via_one_hour)
    assert (via_one_hour <= one_hour + 1e-9).mean() > 0.99  # PCM conductance decays


def test_frozen_read_noise_starts_with_the_first_drift_call(tile):
    """aihwkit: ``program_weights`` leaves the programmed conductances, ``drift_weights(t)``
    (``t = 0`` included) samples read noise; a reprogrammed cell reads without it again."""
    def conductances(read_noise, drift_times, reprogram=False):
        tile.configure(memxbar.PCM(), seed=4, read_noise=read_noise)
        program_level(tile, 15.0)
        for t in drift_times:
            tile.drift(t)
        if reprogram:
            program_level(tile, 15.0)
        return np.stack(tile.conductances())

    programmed = conductances("per_read", [])
    assert np.array_equal(conductances("frozen", []), programmed)
    frozen_at_0 = conductances("frozen", [0.0])
    changed = (frozen_at_0 != programmed).mean()
    assert changed > 0.5, f"drift(0) moved only {changed:.1%} of the conductances: no read noise"
    assert np.array_equal(conductances("per_read", [0.0]), programmed)  # drift at t = 0 is a factor 1
    # programming after a drift call: the new cells read without read noise until the next call
    reprogrammed = conductances("frozen", [0.0], reprogram=True)
    assert np.array_equal(reprogrammed, conductances("per_read", [0.0], reprogram=True))


@pytest.mark.parametrize("t", [0.0, 3600.0, 86400.0 * 365])
@pytest.mark.parametrize("g_target", LEVELS_US)
def test_frozen_read_noise_std(tile, g_target, t):
    # same seed, same programming: per_read holds the noise-free drifted conductances
    tile.configure(memxbar.PCM(), seed=21, read_noise="per_read")
    g_quantised = program_level(tile, g_target)
    g_prog = tile.conductances()[0].ravel()[1:]
    tile.drift(t)
    g_drift = tile.conductances()[0].ravel()[1:]
    tile.configure(memxbar.PCM(), seed=21, read_noise="frozen")
    program_level(tile, g_target)
    tile.drift(t)
    g_read = tile.conductances()[0].ravel()[1:]
    measured = np.std((g_read - g_drift) / g_drift)
    expected = np.sqrt(np.mean(pcm_read_sigma_rel(g_prog, t) ** 2))
    print(f"{g_target} uS (level {g_quantised:.2f}), t={t:.0f} s: read noise {measured:.5f}, "
          f"equation {expected:.5f}")
    assert abs(measured / expected - 1) < 0.05


def test_per_read_noise_std_through_mvms():
    """Per-read noise seen in MVM outputs: sigma_j**2 = sum_i x_i**2 (sigma+_ij**2 + sigma-_ij**2)."""
    with memxbar.open("model://?rows=64&cols=64&lanes=8") as dev:
        tile = dev.tile(0)
        cfg = tile.config
        pcm = memxbar.PCM(out_noise=0.0)
        tile.configure(pcm, seed=5)
        level = 150
        tile.program_levels(np.full((64, 64), level), np.full((64, 64), level))  # W = 0, noise remains
        g_prog = tile.conductances()  # uS, at t = 0 and without read noise in per_read mode
        t = 3600.0
        tile.drift(t)
        g_drift = tile.conductances()
        sigma_cells = [g_drift[k] * pcm_read_sigma_rel(g_prog[k], t) / pcm.lsb(cfg) for k in range(2)]
        expected = cfg.x_max * np.sqrt((sigma_cells[0] ** 2 + sigma_cells[1] ** 2).sum(axis=1))  # (cols,)
        x = np.full((400, cfg.rows), cfg.x_max)
        y = tile.run_codes(x) * 2.0**cfg.adc_shift
        ratio = y.std(axis=0) / expected
        print(f"per-read noise: measured / equation = {ratio.mean():.4f} (column spread {ratio.std():.4f})")
        assert abs(ratio.mean() - 1) < 0.05
        assert not np.array_equal(tile.run_codes(x[:1]), tile.run_codes(x[:1]))  # fresh every read


# -- the drift exponent where aihwkit's equations bite: below the clip points -------------------
# mu_nu is clipped below x ~ 0.0076 and above ~ 0.2, sigma_nu below ~ 0.017 and above ~ 0.33:
# levels of 1-4 uS (x = 0.04-0.16) sit on both slopes, so a wrong sign or slope moves them.
LOW_LEVELS_US = (1.0, 2.5, 4.0)


def folded_normal(mu, sigma):
    """Mean and standard deviation of |N(mu, sigma)|."""
    from math import erf, exp, pi

    mean = sigma * sqrt(2 / pi) * exp(-mu * mu / (2 * sigma * sigma)) + mu * erf(mu / (sigma * sqrt(2)))
    return mean, sqrt(mu * mu + sigma * sigma - mean * mean)


def drift_exponents(pcm, g_target, seed):
    """The drift exponents the golden model samples for 2 x 64 x 64 devices programmed to ``g_target``."""
    from memxbar.model import TileModel
    from memxbar.protocol import TileConfig

    cfg = TileConfig(rows=64, cols=64, lanes=8)
    model = TileModel(cfg)
    model.configure(seed, ReadNoise.FROZEN, pcm.compile_program(cfg), pcm.compile_drift(cfg, 0.0))
    level = round(g_target / pcm.lsb(cfg))
    model.program_levels(np.full((64, 64), level), np.full((64, 64), level))
    return model.nu.ravel() * pcm.nu_step(), level * pcm.lsb(cfg)


@pytest.mark.parametrize("g_target", LOW_LEVELS_US)
def test_drift_exponent_distribution_at_low_levels(g_target):
    from scipy import stats

    pcm = memxbar.PCM()
    nu, g_quantised = drift_exponents(pcm, g_target, seed=31)
    mu, sigma = pcm_nu(g_quantised)
    assert pcm_nu(g_quantised) != pcm_nu(1.001 * g_quantised), "the level is on a clip, not a slope"
    mean, sd = folded_normal(mu, sigma)
    n = nu.size
    # nu codes are rounded to steps of nu_step: half a step of CDF shift at the density's peak
    step = pcm.nu_step()
    quantisation = step / 2 / (sigma * sqrt(2 * np.pi))
    distance = stats.kstest(nu, stats.foldnorm(abs(mu) / sigma, scale=sigma).cdf).statistic
    print(f"{g_target} uS: nu mean {nu.mean():.5f} (folded {mean:.5f}), sd {nu.std():.5f} ({sd:.5f}), "
          f"KS {distance:.4f}")
    assert abs(nu.mean() - mean) < 3 * sd / sqrt(n)
    assert abs(nu.std() - sd) < 3 * sd / sqrt(2 * n) + step**2 / (12 * sd)  # rounding adds step**2/12
    assert distance < 1.73 / sqrt(n) + quantisation  # KS at p = 0.005, plus the rounding


def test_drift_exponent_would_catch_a_sign_error_in_the_slope():
    """The same check against mu_nu with the slope's sign flipped must fail by far."""
    pcm = memxbar.PCM()
    nu, g_quantised = drift_exponents(pcm, 2.5, seed=32)
    x = g_quantised / G_MAX
    wrong_mu = min(max(+0.0155 * log(x) + 0.0244, 0.049), 0.1)
    mean, sd = folded_normal(wrong_mu, pcm_nu(g_quantised)[1])
    assert abs(nu.mean() - mean) > 10 * sd / sqrt(nu.size)


# -- aihwkit's knobs ------------------------------------------------------------------------------


def test_drift_scale_scales_the_exponent():
    base, _ = drift_exponents(memxbar.PCM(), 2.5, seed=33)
    half, _ = drift_exponents(memxbar.PCM(drift_scale=0.5), 2.5, seed=33)
    # the same draws scaled: equal up to the 8-bit code rounding of each exponent
    assert abs(half.mean() / base.mean() - 0.5) < 0.01


def test_prog_noise_scale_and_coefficients(tile):
    tile.configure(memxbar.PCM(prog_noise_scale=2.0), seed=41)
    g_quantised = program_level(tile, 15.0)
    measured = tile.conductances()[0].ravel()[1:]
    expected = 2.0 * pcm_sigma_prog(g_quantised)
    n = measured.size
    assert abs(measured.std() - expected) < 3 * expected / sqrt(2 * n) + tile.model.lsb(tile.config) ** 2 / 12
    custom = memxbar.PCM(prog_coeff=[0.5, 0.0, 1.0])  # fitted at g_max, as aihwkit
    g = np.array([0.0, 12.5, 25.0])
    assert np.allclose(custom.prog_sigma(g), [0.5, 0.75, 1.5])
    scaled = memxbar.PCM(g_max=50.0)  # aihwkit's fit was at 25 uS: sigma scales with g_max
    assert np.allclose(scaled.prog_sigma(2 * g), 2 * memxbar.PCM().prog_sigma(g))


def test_read_noise_scale_t0_and_t_read():
    g = np.array([2.0, 10.0, 25.0])
    t = 3600.0
    pcm = memxbar.PCM(read_noise_scale=0.5, t_0=100.0, t_read=1e-6)
    q_s = np.minimum(0.0088 / np.maximum((g / G_MAX) ** 0.65, 1e-3), 0.2)
    assert np.allclose(pcm.read_sigma(g, t), 0.5 * q_s * sqrt(log((t + 100.0 + 1e-6) / 2e-6)))
    assert np.isclose(pcm.drift_factor(0.06, t), ((t + 100.0) / 100.0) ** -0.06)
    assert memxbar.PCM().drift_factor(0.06, t) == ((t + T0) / T0) ** -0.06


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"t_0": 0.0}, r"t_0 must be > 0"),
    ({"t_read": -1.0}, r"t_read must be > 0"),
    ({"drift_scale": float("nan")}, r"drift_scale must be a finite number"),
    ({"prog_coeff": []}, r"prog_coeff must hold at least one finite number"),
    ({"prog_coeff": "abc"}, r"prog_coeff must be a sequence of numbers"),
])
def test_bad_knobs_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        memxbar.PCM(**kwargs)
