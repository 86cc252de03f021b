"""``memxbar.sweep``: every task of a grid as a Dask task, on a laptop, a cluster or a shelf of boards.

The client loads the network once (trains or reads the float model, reads the data) and
scatters that payload to every worker once (``broadcast=True``); tasks refer to it by its
future. Each worker keeps its devices across tasks and sweeps in a :class:`memxbar.sweep_worker.DevicePlugin`:

- with a ``backend`` URL, each worker thread opens that URL once (``model://``, or its own
  ``sim://`` simulator, built once and cached);
- with ``backend="worker"`` each worker uses the one device it is bound to by its own
  environment, ``MEMXBAR_DEVICE=URL``; it advertises the resource ``memxbar_device=1`` and
  every task asks for it, so one task at a time uses a board. ``devices=[url, ...]`` starts
  such workers on this machine, one per URL.

Dask and its distributed scheduler are the optional extra ``memxbar[sweep]``.
"""

import json
import logging
import os
import time
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

from .devices import DeviceModel
from .sweep_grid import BOUND, Grid
from .sweep_networks import network_from, resolve, resolve_callable
from .sweep_results import SweepResult, read_previous

__all__ = ["bound_cluster", "device_class", "local_cluster", "sweep"]

WRITE_EVERY_S = 2.0  # how often the output files are rewritten while tasks complete
CONNECT_TIMEOUT_S = 10  # to an existing scheduler


def _distributed():
    """``(distributed, memxbar.sweep_worker)``, or an error naming the extra to install."""
    try:
        import distributed
        import threadpoolctl  # noqa: F401  (the workers pin BLAS threads with it)
    except ImportError:
        raise ImportError("memxbar sweep needs Dask's distributed scheduler: pip install 'memxbar[sweep]'") \
            from None
    from . import sweep_worker

    return distributed, sweep_worker


def _memxbar_version():
    try:
        return version("memxbar")
    except PackageNotFoundError:
        return "0+unknown"


def device_class(name):
    """The device-model class of a grid's ``device``: pcm, rram, ideal or ``module:Class``."""
    from . import PCM, RRAM, Ideal

    if isinstance(name, type) and issubclass(name, DeviceModel):
        return name
    builtin = {"pcm": PCM, "rram": RRAM, "ideal": Ideal}
    if isinstance(name, str) and name.lower() in builtin:
        return builtin[name.lower()]
    if isinstance(name, str) and ":" in name:
        found = resolve_callable(name, "device")
        if isinstance(found, type) and issubclass(found, DeviceModel):
            return found
        raise ValueError(f"device {name!r} is not a memxbar.DeviceModel subclass")
    raise ValueError(f"unknown device {name!r}; use pcm, rram, ideal or module:Class (a memxbar.DeviceModel)")


# -- clusters ------------------------------------------------------------------------------------------


def local_cluster(workers=None, processes=True):
    """A ``LocalCluster`` of ``workers`` (default: one per core), one thread each, any free dashboard port."""
    distributed, _ = _distributed()
    workers = workers or os.cpu_count() or 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    with _fast_malloc():
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                        dashboard_address=":0", silence_logs=logging.ERROR)


def bound_cluster(urls):
    """One worker process per device URL, each bound to its device (``MEMXBAR_DEVICE``, a resource)."""
    distributed, worker = _distributed()
    if isinstance(urls, str) or not urls or not all(isinstance(url, str) and url for url in urls):
        raise ValueError(f"devices must be a list of device URLs, not {urls!r}")
    options = {"nthreads": 1, "resources": {worker.RESOURCE: 1}, "silence_logs": logging.ERROR}
    workers = {f"device-{number}": {"cls": distributed.Nanny,
                                    "options": {**options, "env": {worker.DEVICE_ENV: url}}}
               for number, url in enumerate(urls)}
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": ":0"}}
    with _fast_malloc():
        return distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR)


def _fast_malloc():
    """Worker processes without Dask's ``MALLOC_TRIM_THRESHOLD_`` (its BLAS pins stay).

    Setting any glibc malloc threshold turns off its dynamic mmap threshold, so every numpy
    array above 128 KiB becomes a fresh mmap with its page faults: a digits task measured 516 ms
    in such a worker and 340 ms without it (326 ms outside Dask).
    """
    import dask

    return dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})


@contextmanager
def _client(client, scheduler, workers, devices, processes):
    distributed, _ = _distributed()
    if client is not None:
        yield client
        return
    if scheduler is not None:
        try:
            made = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {error}") from None
        with made:
            yield made
        return
    cluster = bound_cluster(devices) if devices else local_cluster(workers, processes)
    with cluster, distributed.Client(cluster) as made:
        yield made


# -- the client side -----------------------------------------------------------------------------------


def sweep(grid=None, *, network=None, model=None, data=None, evaluate=None, output=None, resume=True,
          client=None, scheduler=None, workers=None, devices=None, processes=True, progress=True,
          say=print, **fields):
    """Run every task of ``grid`` on Dask; returns a :class:`memxbar.sweep_results.SweepResult`.

    Parameters
    ----------
    grid : memxbar.sweep_grid.Grid or dict or path, optional
        What to sweep (a ``.yaml`` / ``.json`` file, or a dict of its fields); ``fields``
        (``backend=``, ``device=``, ``params=``, ``seeds=``, ``times=``, ``compensation=``,
        ``samples=``, ...) override it.
    network : str or memxbar.sweep_networks.Network, optional
        Overrides the grid's network (a name, ``module:function`` or a ``Network``).
    model, data, evaluate : callable or "module:function", optional
        Your own model factory (or checkpoint path), data and metric instead of a network
        (:func:`memxbar.sweep_networks.network_from`).
    output : path, optional
        Writes ``output.csv`` and ``output.json`` while tasks complete; a rerun with
        ``resume=True`` skips the points already there with the same point, memxbar version,
        build id and grid hash.
    client, scheduler, workers, devices, processes
        Where to run: an existing ``distributed.Client``; a scheduler address
        (``tcp://HOST:PORT``); else a ``LocalCluster`` of ``workers`` (default one per core,
        ``processes=False`` for threads), or with ``devices=[url, ...]`` one worker bound to
        each device.
    """
    distributed, worker = _distributed()
    grid = _grid(grid, fields)
    if devices:
        grid.backend = BOUND
    if model is not None:
        net = network_from(model, evaluate, data)
    elif data is not None or evaluate is not None:
        raise ValueError("data= and evaluate= go with model= (your own model factory)")
    else:
        net = resolve(network if network is not None else grid.network)
    cls = device_class(grid.device)
    tasks = grid.tasks()
    _check_params(cls, tasks)
    payload = net.load(grid.samples)
    reference = net.metrics(net.float_model(payload), payload[1])
    spec = {"network": net.for_workers(), "network_name": net.name, "device_class": cls,
            "device_name": cls.__name__, "params": list(grid.params), "schedule": grid.schedule(),
            "read_noise": grid.read_noise, "clock_mhz": float(grid.clock_mhz), "metrics": list(reference),
            "version": _memxbar_version(), "grid_hash": grid.hash(net.name)}
    meta = {"grid": grid.as_dict(), "grid_hash": spec["grid_hash"], "memxbar_version": spec["version"],
            "network": net.name, "device_model": cls.__name__, "params": grid.params,
            "metrics": list(reference), "float": reference}
    started = time.monotonic()
    with _client(client, scheduler, workers, devices, processes) as dask_client:
        bound = grid.backend == BOUND
        resources = {worker.RESOURCE: 1} if bound else None
        build_id = _prepare_workers(dask_client, worker, None if bound else grid.backend, resources)
        meta["build_id"] = build_id
        previous = read_previous(output) if output is not None and resume else []
        rows_by_task = _completed(previous, tasks, grid, spec, build_id)
        if rows_by_task:
            say(f"resuming: {len(rows_by_task)} of {len(tasks)} tasks already in {output}")
        stale = len(previous) - sum(len(rows) for rows in rows_by_task.values())
        if stale:
            say(f"{stale} earlier row(s) of {output} are not reused (failed, in an unfinished task, or of "
                f"another grid hash, build or memxbar version) and are replaced")
        todo = [task for task in tasks if task.index not in rows_by_task]
        # the float model and the data go to every worker once; each task names the future
        [scattered] = dask_client.scatter([payload], broadcast=True)
        futures = {dask_client.submit(worker.run_task, spec, task, scattered, resources=resources,
                                      pure=False, key=f"memxbar-task-{task.index}-{time.time_ns()}"): task
                   for task in todo}
        submitted = time.monotonic()
        bar = _progress(len(tasks), len(tasks) - len(todo), progress)
        last_write = time.monotonic()
        for future in distributed.as_completed(futures):
            task = futures[future]
            try:
                rows = future.result()
            except Exception as error:  # the worker died, or the task could not even start
                rows = worker.failed_rows(spec, task, f"{type(error).__name__}: {error}")
            for row in rows:
                if not row["error"] and row["build_id"] != build_id:
                    row["error"] = f"device build {row['build_id']} differs from the sweep's {build_id}"
            rows_by_task[task.index] = rows
            bar.update()
            if output is not None and time.monotonic() - last_write > WRITE_EVERY_S:
                _result(rows_by_task, meta, started).write(output)
                last_write = time.monotonic()
        bar.close()
        meta["tasks_run"], meta["tasks_s"] = len(todo), round(time.monotonic() - submitted, 3)
        meta["workers"] = len(dask_client.scheduler_info()["workers"])
    result = _result(rows_by_task, meta, started)
    if output is not None:
        result.write(output)
    return result


def _grid(grid, fields):
    if isinstance(grid, Grid):
        return Grid.from_dict(grid.as_dict(), **fields) if fields else grid
    if isinstance(grid, dict) or grid is None:
        return Grid.from_dict(grid or {}, **fields)
    return Grid.from_file(grid, **fields)


def _check_params(cls, tasks):
    """Every parameter combination makes a device model, here, before any task is shipped."""
    seen = set()
    for task in tasks:
        key = json.dumps(task.params, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            cls(**task.params)
        except (TypeError, ValueError) as error:
            call = ", ".join(f"{name}={value!r}" for name, value in task.params.items())
            raise ValueError(f"device model {cls.__name__}({call}): {error}") from None


def _prepare_workers(client, worker, backend, resources):
    """Give every worker its device plugin; returns the one build id of their devices."""
    workers = client.scheduler_info()["workers"]
    addresses = [address for address, info in workers.items()
                 if resources is None or info.get("resources", {}).get(worker.RESOURCE)]
    if not addresses:
        raise ValueError(f"no worker has a bound device (resource {worker.RESOURCE}): start workers with "
                         f"{worker.DEVICE_ENV}=URL and --resources {worker.RESOURCE}=1, or give the sweep a "
                         f"backend URL")
    client.register_plugin(worker.DevicePlugin(backend), name=worker.PLUGIN)
    # opening the devices is a task (not client.run): a sim:// build may take minutes, which
    # must not block a worker's event loop
    probes = client.gather([client.submit(worker.probe, workers=[address], resources=resources, pure=False)
                            for address in addresses])
    builds = sorted({probe["build_id"] for probe in probes})
    if len(builds) != 1:
        raise ValueError(f"the workers' devices are different builds ({', '.join(builds)}): their numbers "
                         f"would depend on where a task runs; bind one build to every worker")
    return builds[0]


def _result(rows_by_task, meta, started):
    rows = [row for index in sorted(rows_by_task) for row in rows_by_task[index]]
    return SweepResult(rows, {**meta, "seconds": round(time.monotonic() - started, 2)})


def _completed(previous, tasks, grid, spec, build_id):
    """``{task index: rows}`` of the tasks whose every point is in ``previous``, unfailed, same keys."""
    wanted = (spec["version"], build_id, spec["grid_hash"])
    usable = {}
    for row in previous:
        keys = (row.get("memxbar_version"), row.get("build_id"), row.get("grid_hash"))
        if row.get("error") or keys != wanted:
            continue
        params = {name: row.get(name) for name in spec["params"]}
        key = json.dumps([params, row.get("seed")], sort_keys=True)
        usable[key, row.get("time_s"), row.get("compensation")] = row
    done = {}
    for task in tasks:
        rows = [usable.get((task.key, t, c)) for t, c in grid.schedule()]
        if all(row is not None for row in rows):
            done[task.index] = rows
    return done


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total, done, enabled):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="memxbar sweep", unit="task", leave=False)
