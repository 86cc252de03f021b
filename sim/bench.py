"""Benchmark of the tile: golden-model MVMs/s and the RTL under Verilator. Prints figures.

Run ``python -m memxbar.sim.bench``; the README's tables come from its output. This is a
measurement, not a test: nothing here passes or fails on time.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import memxbar
from memxbar.mapping import Mapping
from memxbar.protocol.frames import Command

SHAPE = 64  # the default tile: 64 inputs x 64 outputs

#: The goals of issue 14 for ``model://`` (64x64 PCM tile, ``Tile.matvec``).
GOALS = {"matvec batch 1, per_read PCM": "<= 30 us a call",
         "matvec batch 1000, ideal": ">= 2,000,000 MVMs/s",
         "matvec batch 1000, frozen PCM": ">= 1,000,000 MVMs/s",
         "matvec batch 1000, per_read PCM": ">= 1,000,000 MVMs/s",
         "mapping layer": "no slower than the tile"}


def _rate(call, seconds):
    """Seconds per call of ``call()``: the best of five rounds of repeated calls (load is noisy)."""
    call()  # warm up (JIT, caches)
    best = float("inf")
    for _ in range(5):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds / 5:
            call()
            calls += 1
        best = min(best, elapsed / calls)
    return best


def numpy_reference(batch, seconds):
    """Seconds per ``x @ W.T`` in plain numpy float32, the same shape as a tile's MVMs: with
    numpy's default BLAS threads, and pinned to one thread (as model:// runs small products)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    w = rng.normal(size=(SHAPE, SHAPE)).astype(np.float32)
    x = rng.normal(size=(batch, SHAPE)).astype(np.float32)
    if batch == 1:
        x = x[0]
    default = _rate(lambda: x @ w.T, seconds)
    with threadpool_limits(1, user_api="blas"):
        pinned = _rate(lambda: x @ w.T, seconds)
    return default, pinned


def model_rates(batch, seconds):
    """Seconds per call on ``model://`` (64x64) of every workload of the goals at ``batch``."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(SHAPE, SHAPE))
    x = rng.normal(size=(batch, SHAPE))
    if batch == 1:
        x = x[0]
    rates = {}
    with memxbar.open(f"model://?rows={SHAPE}&cols={SHAPE}") as dev:
        tile = dev.tile(0)
        cfg = tile.config
        levels = rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows))
        codes = rng.integers(-cfg.x_max, cfg.x_max + 1, (batch, cfg.rows))
        tile.program_levels(*levels)
        rates["run_codes, ideal"] = _rate(lambda: tile.run_codes(codes), seconds)
        tile.program(weights)
        rates["matvec, ideal"] = _rate(lambda: tile.matvec(x), seconds)
        for mode in ("frozen", "per_read"):
            tile.configure(memxbar.PCM(), seed=1, read_noise=mode)
            tile.program(weights)
            tile.drift(3600.0)
            rates[f"matvec, {mode} PCM"] = _rate(lambda: tile.matvec(x), seconds)
    # bound_retries=0: the tile's work (Tile.matvec has no bound management); the default
    # reruns the vectors whose outputs hit the ADC's rail, so it runs more MVMs than ``batch``
    for retries in (0, 3):
        with memxbar.open(f"model://?rows={SHAPE}&cols={SHAPE}") as dev:
            mapping = Mapping(dev, memxbar.PCM(), seed=1, read_noise="per_read", bound_retries=retries)
            layer = mapping.add(weights)
            mapping.program()
            mapping.drift(3600.0)
            name = f"mapping layer, per_read PCM, bound_retries={retries}"
            rates[name] = _rate(lambda layer=layer: layer(x), seconds)
    return rates


def model_figures(seconds):
    """Print the model's figures beside the numpy reference measured in the same run."""
    print(f"model://, {SHAPE}x{SHAPE} tile; reference: numpy float32 x @ W.T of the same shape, "
          f"same run (best of 5 rounds)")
    for batch in (1, 1000):
        default, reference = numpy_reference(batch, seconds)
        print(f"  batch {batch}: numpy reference {default * 1e6:9.2f} us a call, {batch / default:>13,.0f} "
              f"MVMs/s; on one BLAS thread {reference * 1e6:.2f} us, {batch / reference:,.0f} MVMs/s "
              f"(the ratios below)")
        for name, per_call in model_rates(batch, seconds).items():
            print(f"    {name:<50}{per_call * 1e6:>11.2f} us a call{batch / per_call:>14,.0f} MVMs/s"
                  f"{per_call / reference:>8.1f}x numpy")
    print("  goals: " + "; ".join(f"{name} {goal}" for name, goal in GOALS.items()))


def rtl_streaming(config, batch):
    """Stream ``batch`` vectors back to back through the Verilated tile (cocotb-driven)."""
    from memxbar.hdl import Tile

    from . import verilator

    build = verilator.build(Tile(config), "memxbar_tile")
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        build.run("memxbar.sim.tb_tile", testcase="back_to_back_throughput", extra_env={
            "MEMXBAR_TILE_CONFIG": json.dumps(config.as_dict()), "MEMXBAR_TB_BATCH": str(batch),
            "MEMXBAR_TB_REPORT": str(report),
        }, log_file=Path(folder) / "sim.log")
        return json.loads(report.read_text())


def rtl_free_running(config, cycles):
    """Cycles/s of the tile compiled with a C++ harness: Verilator's own speed, no Python."""
    from memxbar.hdl import Tile

    from . import verilator

    harness = Path(__file__).with_name("tile_speed.cpp")
    executable = verilator.build_standalone(Tile(config), "memxbar_tile", harness)
    done, outputs, seconds = subprocess.run([executable, str(cycles)], check=True,
                                            capture_output=True, text=True).stdout.split()
    mvms = int(outputs) / config.cols
    return int(done) / float(seconds), int(done) / mvms


def sim_speed(top, noise, batch=256, seconds=3.0):
    """Wall-clock speed of ``sim://?top=TOP`` on a 64x64, 8-lane tile streaming RUNs of ``batch``.

    ``noise``: ``None`` (ideal levels) or ``"per_read"`` (PCM, fresh read noise on every MVM).
    Returns MVMs/s, simulated cycles/s of the whole top (the device's clock counter over the
    wall time of the RUNs) and one HELLO round trip in seconds.
    """
    rng = np.random.default_rng(0)
    with memxbar.open(f"sim://?rows=64&cols=64&lanes=8&top={top}") as dev:
        backend, tile = dev._backend, dev.tile(0)
        cfg = tile.config
        if noise is None:
            tile.program_levels(*rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows)))
        else:
            tile.configure(memxbar.PCM(), seed=1, read_noise=noise)
            tile.program(rng.normal(size=(cfg.cols, cfg.rows)))
        started = time.perf_counter()
        for _ in range(20):
            backend.link.transact(Command.HELLO)
        round_trip = (time.perf_counter() - started) / 20
        x = rng.integers(-cfg.x_max, cfg.x_max + 1, (batch, cfg.rows))
        pid = backend.simulator._process.pid
        mvms = cycles = wall = cpu = 0
        while wall < seconds:
            before, cpu_before = backend.counters()["clock"], _cpu_seconds(pid)
            started = time.perf_counter()
            tile.run_codes(x)
            wall += time.perf_counter() - started
            cpu += _cpu_seconds(pid) - cpu_before
            cycles += backend.counters()["clock"] - before
            mvms += batch
    return {"mvms_per_s": mvms / wall, "cycles_per_s": cycles / wall, "cycles_per_cpu_s": cycles / cpu,
            "round_trip": round_trip}


def _cpu_seconds(pid):
    """CPU time (user + system) of process ``pid`` so far, from Linux's /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: The RTL demo's subset: the whole main job is 9 million MVMs, hours of RTL simulation.
DEMO_SUBSET = {"seeds": 1, "samples": 20, "times": ["1 day"]}


def demo_wall_time(backend):
    """Seconds of ``memxbar demo --backend BACKEND`` on :data:`DEMO_SUBSET`, progress off
    (the network's one-off training is cached before the first timing)."""
    from memxbar.demo import demo, trained_cnns

    trained_cnns(say=lambda *_: None)
    started = time.perf_counter()
    demo(backend, progress=False, say=lambda *_: None, **DEMO_SUBSET)
    return time.perf_counter() - started


def link_figures(clock_hz=12e6, divisor=4, batches=(1, 8, 64, 256), noisy=False):
    """RUN over sim://?top=pins at 3 Mbaud (12 MHz / 4): wire efficiency, line use, MVMs/s, round trip.

    ``noisy``: a PCM tile with per-read noise, whose RUNs pipeline as well (protocol 5).
    """
    rng = np.random.default_rng(0)
    rows = []
    with memxbar.open(f"sim://?rows=64&cols=64&lanes=8&divisor={divisor}&top=pins") as dev:
        backend, tile = dev._backend, dev.tile(0)
        cfg = tile.config
        if noisy:
            tile.configure(memxbar.PCM(), seed=1, read_noise="per_read")
            tile.program(rng.normal(size=(cfg.cols, cfg.rows)))
        else:
            tile.program_levels(*rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows)))
        link = backend.link
        started = time.perf_counter()
        for _ in range(20):
            link.transact(Command.HELLO)
        round_trip = (time.perf_counter() - started) / 20
        for batch in batches:
            x = rng.integers(-cfg.x_max, cfg.x_max + 1, (batch, cfg.rows))
            before = backend.counters()
            sent, received = link.bytes_sent, link.bytes_received
            started = time.perf_counter()
            tile.run_codes(x)
            wall = time.perf_counter() - started
            sent, received = link.bytes_sent - sent, link.bytes_received - received
            # device time from the RUN requests' first byte to the next COUNTERS request
            cycles = backend.counters()["clock"] - before["clock"]
            payload_in, payload_out = batch * cfg.rows, batch * cfg.cols * 2
            bit_cycles = 10 * divisor
            rows.append({
                "batch": batch, "efficiency_in": payload_in / sent, "efficiency_out": payload_out / received,
                "line_in": sent * bit_cycles / cycles, "line_out": received * bit_cycles / cycles,
                "device_mvms_per_s": batch / (cycles / clock_hz), "sim_mvms_per_s": batch / wall,
            })
    return round_trip, rows


def sim_figures(with_demo):
    """sim:// with the byte-level top against the pin-level one, measured in the same run."""
    reference = 1000 / model_rates(1000, seconds=0.5)["run_codes, ideal"]
    print(f"\nsim://, 64x64 tile with 8 lanes, RUN batches of 256 (model:// run_codes at batch 1000 in "
          f"this run: {reference:,.0f} MVMs/s)")
    print(f"  {'top':<7}{'noise':<10}{'MVMs/s':>10}{'cycles/s':>13}{'cycles/CPU s':>14}"
          f"{'HELLO round trip':>18}")
    figures = {}
    for noise in (None, "per_read"):
        for top in ("pins", "bytes"):
            r = figures[top, noise] = sim_speed(top, noise)
            print(f"  {top:<7}{noise or 'ideal':<10}{r['mvms_per_s']:>10,.0f}{r['cycles_per_s']:>13,.0f}"
                  f"{r['cycles_per_cpu_s']:>14,.0f}{r['round_trip'] * 1e3:>15.2f} ms")
        gain = figures["bytes", noise]["mvms_per_s"] / figures["pins", noise]["mvms_per_s"]
        print(f"  bytes / pins: {gain:.1f}x")
    if with_demo:
        times = {url: demo_wall_time(url) for url in ("model://", "sim://?top=pins", "sim://")}
        shown = ", ".join(f"{url} {t:.0f} s" for url, t in times.items())
        subset = f"--seeds 1 --samples {DEMO_SUBSET['samples']} --times '{DEMO_SUBSET['times'][0]}'"
        print(f"  memxbar demo {subset} wall time: {shown}; "
              f"bytes / pins {times['sim://?top=pins'] / times['sim://']:.1f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="vectors streamed per RTL config")
    parser.add_argument("--cycles", type=int, default=2_000_000, help="cycles of the C++ harness run")
    parser.add_argument("--model-only", action="store_true",
                        help="only the model:// figures (no Verilator needed)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each model figure")
    parser.add_argument("--sim-only", action="store_true",
                        help="only the sim:// figures (both tops, the demo on each backend)")
    parser.add_argument("--demo", action="store_true", help="also time `memxbar demo` on sim:// and model://")
    args = parser.parse_args(argv)
    if args.sim_only:
        sim_figures(args.demo)
        return

    model_figures(args.seconds)
    if args.model_only:
        return
    from .configs import VERIFIED_TILES

    print()

    print(f"\nRTL under Verilator, {args.batch} vectors back to back, driven by cocotb")
    print(f"  {'tile':<16}{'cycles/MVM':>11}{'formula':>9}{'ideal':>7}{'latency':>9}"
          f"{'sim cycles/s':>14}")
    for name, config in VERIFIED_TILES.items():
        r = rtl_streaming(config, args.batch)
        measured = sorted(set(r["cycles_per_mvm"]))
        shown = str(measured[0]) if len(measured) == 1 else f"{measured[0]}..{measured[-1]}"
        print(f"  {name:<16}{shown:>11}{r['spec_cycles_per_mvm']:>9}"
              f"{r['ideal_cycles_per_mvm']:>7}{r['first_vector_latency']:>9}"
              f"{r['simulated_cycles'] / r['wall_seconds']:>14,.0f}")
    print("\nRTL under Verilator with a C++ harness (no cocotb), inputs always valid")
    print(f"  {'tile':<16}{'sim cycles/s':>14}{'cycles/MVM':>12}")
    for name, config in VERIFIED_TILES.items():
        rate, per_mvm = rtl_free_running(config, args.cycles)
        print(f"  {name:<16}{rate:>14,.0f}{per_mvm:>12.1f}")

    sim_figures(args.demo)

    for noisy in (False, True):
        round_trip, rows = link_figures(noisy=noisy)
        print("\nLink: 64x64 tile behind the UART pins at 3 Mbaud (12 MHz, 4 cycles/bit), sim://"
              + (", PCM with per-read noise" if noisy else ""))
        print(f"  sim:// HELLO round trip: {round_trip * 1e3:.1f} ms wall clock")
        print(f"  {'batch':>6}{'payload/wire in':>17}{'out':>7}{'line use in':>13}{'out':>7}"
              f"{'MVMs/s @12MHz':>15}{'sim MVMs/s':>12}")
        for r in rows:
            print(f"  {r['batch']:>6}{r['efficiency_in']:>17.3f}{r['efficiency_out']:>7.3f}"
                  f"{r['line_in']:>13.2f}{r['line_out']:>7.2f}{r['device_mvms_per_s']:>15,.0f}"
                  f"{r['sim_mvms_per_s']:>12,.0f}")

    print("\ncycles/MVM: measured interval between completed vectors; formula: "
          "TileConfig.cycles_per_mvm;\nideal: ceil(rows*cols/lanes); latency: cycles from the "
          "first input transfer offered to the first vector's last output")


if __name__ == "__main__":
    main()
