"""Parity with aihwkit's ``PCMLikeNoiseModel`` itself: the same targets through both, compared.

Optional, not in CI: it needs aihwkit's pure-torch inference noise path, which imports from the
unpacked 1.2.0 sdist without building aihwkit's C++ engine::

    pip download --no-deps aihwkit==1.2.0 && tar xzf aihwkit-1.2.0.tar.gz
    python -m memxbar.sim.parity --aihwkit-src aihwkit-1.2.0/src

(where pip cannot prepare the sdist's metadata without aihwkit's C++ toolchain, the ``src/``
of a clone of github.com/IBM/aihwkit serves the same way).

For each conductance band and time it programs 2 x 64 x 64 devices to the band's level on
``model://`` (frozen read noise, aihwkit's semantics) and the same number through aihwkit
(``apply_programming_noise_to_conductance``, ``generate_drift_coefficients``,
``apply_drift_noise_to_conductance``), and prints both means and standard deviations with a
two-sample Kolmogorov-Smirnov test per band. This is a measurement: nothing passes or fails.
"""

import argparse
import sys

import numpy as np

import memxbar
import memxbar.protocol

BANDS_US = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0)
TIMES = {"programmed": None, "t=0": 0.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 365 * 86400.0}


def memxbar_conductances(g_target, t, seed):
    """Both devices of every cell of a 64x64 tile programmed to ``g_target`` uS, at ``t``."""
    pcm = memxbar.PCM()
    with memxbar.open("model://?rows=64&cols=64") as dev:
        tile = dev.tile(0)
        tile.configure(pcm, seed=seed, read_noise="frozen")
        level = round(g_target / pcm.lsb(tile.config))
        tile.program_levels(np.full((64, 64), level), np.full((64, 64), level))
        if t is not None:
            tile.drift(t)
        g_plus, g_minus = tile.conductances()
    return np.concatenate([g_plus.ravel(), g_minus.ravel()]), level * pcm.lsb(tile.config)


def aihwkit_conductances(g_target, t, n, seed):
    import torch
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    torch.manual_seed(seed)
    model = PCMLikeNoiseModel(g_max=25.0)
    target = torch.full((n,), g_target, dtype=torch.float64)
    g_prog = model.apply_programming_noise_to_conductance(target)
    if t is None:
        return g_prog.numpy()
    nu = model.generate_drift_coefficients(target)
    return model.apply_drift_noise_to_conductance(g_prog, nu, t).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aihwkit-src", help="the src/ folder of an unpacked aihwkit sdist")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.aihwkit_src:
        sys.path.insert(0, args.aihwkit_src)
    try:
        import aihwkit.inference.noise.pcm  # noqa: F401
        from scipy import stats
    except ImportError as error:
        raise SystemExit(f"memxbar parity: {error}; the module docstring says how to get aihwkit") from None

    print(f"{'band uS':>8}{'time':>12}{'mean memxbar':>14}{'aihwkit':>9}{'std memxbar':>13}{'aihwkit':>9}"
          f"{'KS D':>8}{'p':>9}{'KS D rounded':>14}{'p':>9}")
    for band in BANDS_US:
        for name, t in TIMES.items():
            ours, g_target = memxbar_conductances(band, t, args.seed)
            theirs = aihwkit_conductances(g_target, t, ours.size, args.seed)
            test = stats.ks_2samp(ours, theirs)
            # the same samples rounded to the tile's levels: what the quantisation alone explains
            lsb = memxbar.PCM().lsb(memxbar.protocol.TileConfig())
            rounded = stats.ks_2samp(ours, np.clip(np.round(theirs / lsb), 0, 255) * lsb)
            print(f"{g_target:>8.3f}{name:>12}{ours.mean():>14.4f}{theirs.mean():>9.4f}{ours.std():>13.4f}"
                  f"{theirs.std():>9.4f}{test.statistic:>8.4f}{test.pvalue:>9.2g}"
                  f"{rounded.statistic:>14.4f}{rounded.pvalue:>9.2g}")
    print("\nmemxbar: frozen read noise, levels of 0.1225 uS (8-bit), drift exponents as 8-bit codes; "
          "KS D at p = 0.003 for 8192 + 8192 samples: 0.030")


if __name__ == "__main__":
    main()
