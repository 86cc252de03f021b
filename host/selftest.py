"""``memxbar selftest PORT``: is the board I just flashed a working memxbar device?

Two parts, one verdict:

1. **Link soak.** Pseudo-random matrices written with WRITE LEVELS, each checked end to end
   against the device's CHECKSUM of every lane; HELLO round trips for latency; write and MVM
   throughput.
2. **Bit-exact against** ``model://``. Random levels and inputs (and, on a build with physics,
   a PCM device programmed, read, drifted and read again) must give the golden model's codes,
   conductances and event counts exactly.
"""

import statistics
import time
import zlib

import numpy as np

from .backends import url_query
from .device import open as open_device
from .devices import PCM
from .protocol import Window, lane_memory
from .protocol.frames import Command

__all__ = ["selftest"]

#: Event counters both a device and the model keep (``clock`` and frame counts are the link's).
_COMPARED = ("cycles", "mvms", "macs", "adc_conversions", "cell_writes", "write_pulses", "verify_reads")


def selftest(url, matrices=8, seed=1, say=print, pcm=None, **options):
    """Run both parts on the device at ``url``; return a dict of figures with ``passed``.

    ``pcm``: the device model of the physics part (default ``PCM(stuck_on=0.01)``).
    ``options`` go to :func:`memxbar.open` (``baudrate``, ``timeout``, ...).
    """
    rng = np.random.default_rng(seed)
    failures = []
    with open_device(url, **options) as dev:
        backend = dev._backend_for_use()
        if not hasattr(backend, "checksums"):
            raise ValueError(f"selftest checks a device behind a link, not {url!r}: "
                             "give a serial port, a pyserial URL or sim://")
        cfg = dev.info.config
        say(f"selftest of {url}: {cfg.rows}x{cfg.cols} tile, {cfg.lanes} lanes, "
            f"physics {'on' if cfg.physics else 'off'}, build id {dev.info.build_id:08x}")

        latencies = []
        for _ in range(20):
            start = time.perf_counter()
            backend.link.transact(Command.HELLO)
            latencies.append(time.perf_counter() - start)

        written, mismatched = 0, 0
        start = time.perf_counter()
        for index in range(matrices):
            levels = rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows))
            backend.write_levels(0, *levels)
            image = lane_memory(cfg, *levels)
            expected = [zlib.crc32(image[lane].tobytes()) for lane in range(cfg.lanes)]
            if backend.checksums(0) != expected:
                mismatched += 1
                failures.append(f"matrix {index}: CHECKSUM differs from what was written")
            written += image.nbytes
        write_seconds = time.perf_counter() - start

        x = rng.integers(-cfg.x_max, cfg.x_max + 1, (32, cfg.rows))
        start = time.perf_counter()
        backend.run_codes(0, x, Window.full(cfg), 0)
        mvm_seconds = time.perf_counter() - start

        backend.link.transact(Command.RESET)  # counters from 0, as the fresh model's
        with open_device(f"model://?{url_query(cfg)}") as model:
            failures += _compare(dev, model, cfg, rng, pcm or PCM(stuck_on=0.01))

    figures = {
        "latency_ms": {"mean": 1e3 * statistics.fmean(latencies), "std": 1e3 * statistics.stdev(latencies),
                       "worst": 1e3 * max(latencies)},
        "write_bytes_per_s": written / write_seconds,
        "mvms_per_s": len(x) / mvm_seconds,
        "checksum_mismatches": mismatched,
        "failures": failures,
        "passed": not failures,
    }
    lat = figures["latency_ms"]
    say(f"  link soak: {matrices} matrices, {written} bytes, every CHECKSUM "
        f"{'matched' if not mismatched else f'checked: {mismatched} MISMATCHED'}")
    say(f"  latency (HELLO round trip): mean {lat['mean']:.2f} ms, std {lat['std']:.2f} ms, "
        f"worst {lat['worst']:.2f} ms")
    say(f"  throughput: {figures['write_bytes_per_s'] / 1e3:.1f} kB/s of levels, "
        f"{figures['mvms_per_s']:.0f} MVMs/s")
    for failure in failures:
        say(f"  {failure}")
    say(f"{'PASS' if not failures else 'FAIL'}: {url} "
        f"{'agrees with model:// bit for bit' if not failures else f'{len(failures)} checks failed'}")
    return figures


def _compare(dev, model, cfg, rng, pcm):
    """Random programs and inputs on both: every output code, level and counter must agree."""
    failures = []
    for case in range(4):
        levels = rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows))
        x = rng.integers(-cfg.x_max, cfg.x_max + 1, (int(rng.integers(1, 9)), cfg.rows))
        for target in (dev, model):
            target.tile(0).program_levels(*levels)
        if not np.array_equal(dev.tile(0).run_codes(x), model.tile(0).run_codes(x)):
            failures.append(f"random case {case}: MVM codes differ from model://")
    if cfg.physics:
        w = rng.normal(size=(cfg.cols, cfg.rows))
        x = rng.normal(size=(3, cfg.rows))
        seed = int(rng.integers(0, 2**32))
        results = []
        for target in (dev, model):
            tile = target.tile(0)
            tile.configure(pcm, seed=seed)
            tile.program(w)
            steps = [tile.conductances(), tile.matvec(x)]
            tile.drift(86400.0)
            steps += [tile.conductances(), tile.matvec(x)]
            results.append(steps)
        for name, got, want in zip(("levels", "outputs", "levels at 1 day", "outputs at 1 day"),
                                   *results, strict=True):
            if not np.array_equal(np.asarray(got), np.asarray(want)):
                failures.append(f"PCM device: {name} differ from model://")
    device_counts, model_counts = dev.counters(), model.counters()
    for name in _COMPARED:
        if device_counts[name] != model_counts[name]:
            failures.append(f"counter {name}: device {device_counts[name]}, model:// {model_counts[name]}")
    return failures
