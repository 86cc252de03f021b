"""Benchmark of ``memxbar sweep``: one grid on 1 and on 2 workers in one run, and what a task costs.

``python -m memxbar.sweep_bench [GRID.yaml | --digits] [--out STEM]`` prints, measured in the
same run:

- the machine's load average before and after each part, and a plain numpy reference
  (single-threaded 256x256 float64 matrix products per second), so a reader can tell how
  loaded the machine was;
- the grid on a ``LocalCluster`` of 1 and of 2 worker processes (BLAS and PyTorch pinned to
  one thread each), back to back, the speed-up, and that both tables are identical;
- the grid as a plain Python loop in this process (no Dask: the same task code, one device);
- Dask's cost per task: no-op tasks through the same 2-worker cluster, and the sweep's own
  wall time times workers minus the time spent inside tasks, per task.

The 2-worker result is written to ``STEM.csv`` / ``STEM.json`` and plotted to ``STEM.png``.
"""

import argparse
import os
import time

import numpy as np

from .sweep import _distributed, device_class, local_cluster, sweep
from .sweep_grid import Grid
from .sweep_networks import resolve

__all__ = ["DIGITS_GRID", "README_GRID", "main"]

#: the README's sweep: the main job (the demo's CNN on mnist1d) over aihwkit's PCM read-noise and
#: drift scales at 3 values each, 10 seeds, 4 times, without and with global drift compensation
README_GRID = {"network": "mnist1d-cnn", "backend": "model://", "device": "pcm",
               "params": {"read_noise_scale": [0.5, 1.0, 2.0], "drift_scale": [0.5, 1.0, 2.0]},
               "seeds": 10, "times": ["1 s", "1 h", "1 day", "1 year"], "compensation": ["none", "global"]}

#: the previous round's sweep: the digits MLP over RRAM read noise x drift exponent (the
#: exponent's spread fixed at 0.02, so drift is not one factor that compensation removes)
DIGITS_GRID = {"network": "digits-mlp", "backend": "model://", "device": "rram",
               "params": {"read_noise": [0.05, 0.2, 0.5], "nu": [0.01, 0.05, 0.1], "nu_sigma": 0.02},
               "seeds": 10, "times": ["1 s", "1 h", "1 day", "1 year"], "compensation": ["none", "global"]}


def _load():
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _numpy_reference(seconds=1.0):
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).normal(size=(256, 256))
    count, started = 0, time.perf_counter()
    with threadpool_limits(limits=1):
        while time.perf_counter() - started < seconds:
            a @ a
            count += 1
    return count / (time.perf_counter() - started)


def _plain_loop(grid):
    """The grid's tasks one after another in this process, on one device: the loop Dask replaces."""
    from threadpoolctl import threadpool_limits

    import memxbar

    from .sweep_worker import _schedule

    net = resolve(grid.network)
    payload = net.load(grid.samples)
    spec = {"network": net, "network_name": net.name, "device_class": device_class(grid.device),
            "device_name": "", "schedule": grid.schedule(), "read_noise": grid.read_noise,
            "clock_mhz": float(grid.clock_mhz), "version": "", "grid_hash": ""}
    started, cpu_started = time.perf_counter(), time.thread_time()
    with memxbar.open(grid.backend) as device, threadpool_limits(limits=1):
        for task in grid.tasks():
            _schedule(spec, task, payload, device, grid.backend)
    return time.perf_counter() - started, time.thread_time() - cpu_started


def _noop():
    return None


def _per_task_overhead(client, tasks=400):
    client.gather([client.submit(_noop, pure=False) for _ in range(20)])  # warm up
    started = time.perf_counter()
    client.gather([client.submit(_noop, pure=False) for _ in range(tasks)])
    return (time.perf_counter() - started) / tasks


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m memxbar.sweep_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("grid", nargs="?", help="grid file (default: the README's grid)")
    parser.add_argument("--digits", action="store_true", help="the previous round's digits-MLP grid")
    parser.add_argument("--no-loop", action="store_true", help="skip the plain loop without Dask")
    parser.add_argument("--out", default="memxbar-sweep-bench", help="STEM of the 2-worker result files")
    args = parser.parse_args(argv)
    distributed, _ = _distributed()
    if args.grid:
        grid = Grid.from_file(args.grid)
    else:
        grid = Grid.from_dict(DIGITS_GRID if args.digits else README_GRID)
    tasks = len(grid.tasks())
    print(f"grid: {tasks} tasks x {len(grid.schedule())} points ({grid.network}, {grid.device}, "
          f"{dict(grid.params)}, {len(grid.seeds)} seeds, backend {grid.backend})")
    print(f"{_load()}; numpy reference: {_numpy_reference():.0f} single-threaded 256x256 matmuls/s")
    resolve(grid.network).load(grid.samples)  # a first training or data generation is not timed
    runs = {}
    for workers in (1, 2):
        with local_cluster(workers) as cluster, distributed.Client(cluster) as client:
            result = sweep(grid, client=client, progress=False, say=lambda line: None,
                           output=args.out if workers == 2 else None, resume=False)
            noop = _per_task_overhead(client)
        busy = sum(rows[0]["task_s"] for rows in _by_task(result))
        cpu = sum(rows[0]["task_cpu_s"] for rows in _by_task(result))
        overhead = (result.meta["tasks_s"] * workers - busy) / tasks
        runs[workers] = result
        print(f"{workers} worker(s): {result.meta['tasks_s']:.1f} s for the tasks "
              f"({result.meta['seconds']:.1f} s with the device probe and the scatter); inside tasks "
              f"{busy:.1f} s ({busy / tasks * 1e3:.0f} ms per task); idle or overhead "
              f"{overhead * 1e3:.0f} ms per task; a no-op task {noop * 1e3:.2f} ms; CPU inside tasks "
              f"{cpu:.1f} s, {cpu / result.meta['tasks_s']:.2f} cores' worth over the run; {_load()}")
    if not args.no_loop:
        loop, loop_cpu = _plain_loop(grid)
        print(f"plain loop, no Dask, BLAS on 1 thread: {loop:.1f} s ({loop / tasks * 1e3:.0f} ms per task), "
              f"CPU {loop_cpu:.1f} s; {_load()}")
    print(f"numpy reference after: {_numpy_reference():.0f} matmuls/s")
    same = runs[1].table() == runs[2].table()
    print(f"speed-up 2 vs 1 workers: {runs[1].meta['tasks_s'] / runs[2].meta['tasks_s']:.2f}x; "
          f"tables identical: {same}")
    runs[2].plot(f"{args.out}.png")
    print(f"wrote {args.out}.csv, {args.out}.json, {args.out}.png")
    print(runs[2].summary())
    return 0 if same else 1


def _by_task(result):
    groups = {}
    for row in result.rows:
        groups.setdefault((row["seed"], *(row[name] for name in result.meta["params"])), []).append(row)
    return list(groups.values())


if __name__ == "__main__":
    raise SystemExit(main())
