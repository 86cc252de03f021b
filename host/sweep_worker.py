"""The worker side of :func:`memxbar.sweep`: the device a worker keeps, and one task's rows.

Imported by Dask workers (and by the client once it knows Dask is installed).
"""

import os
import threading
import time
from contextlib import contextmanager

from distributed import WorkerPlugin, get_worker
from threadpoolctl import threadpool_limits

from .energy import energy_pj

__all__ = ["DEVICE_ENV", "PLUGIN", "RESOURCE", "DevicePlugin", "failed_rows", "probe", "run_task"]

DEVICE_ENV = "MEMXBAR_DEVICE"  # a bound worker's device URL, from its own environment
RESOURCE = "memxbar_device"    # the worker resource of a bound device: one task at a time uses it
PLUGIN = "memxbar-device"


class DevicePlugin(WorkerPlugin):
    """A worker's devices, kept open across tasks and sweeps.

    With ``url``, every executor thread opens that URL once (threads never share a device,
    whose tiles have one owner each). With ``url=None`` the worker uses the device its own
    environment binds it to (``MEMXBAR_DEVICE``), one task at a time.
    """

    name = PLUGIN

    def __init__(self, url=None):
        self.url = url

    def setup(self, worker):
        self.bound = os.environ.get(DEVICE_ENV) if self.url is None else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._bound_device = None
        self._opened = []

    @contextmanager
    def use(self):
        """``(url, device)`` for one task; a bound device is held for the task's duration."""
        import memxbar

        if self.url is not None:
            device = getattr(self._local, "device", None)
            if device is None:
                device = self._local.device = memxbar.open(self.url)
                self._opened.append(device)
            yield self.url, device
            return
        if not self.bound:
            raise ValueError(f"this worker is bound to no device: start it with {DEVICE_ENV}=URL "
                             f"and --resources {RESOURCE}=1, or give the sweep a backend URL")
        with self._lock:
            if self._bound_device is None:
                self._bound_device = memxbar.open(self.bound)
                self._opened.append(self._bound_device)
            yield self.bound, self._bound_device

    def teardown(self, worker):
        for device in self._opened:
            device.close()
        self._opened.clear()


def probe():
    """The device this worker uses, ``{"backend", "build_id"}``; opens it, kept for the tasks."""
    with get_worker().plugins[PLUGIN].use() as (url, device):
        return {"backend": url, "build_id": f"{device.info.build_id:08x}"}


def run_task(spec, task, payload):
    """Rows of one task: program, then every (time, compensation) of the schedule. Never raises."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    worker = get_worker()
    try:
        # BLAS one thread per worker: the workers are the parallelism (Dask's nanny sets the
        # environment variables too, but a worker started by hand may not have them)
        with threadpool_limits(limits=1), worker.plugins[PLUGIN].use() as (url, device):
            rows = _schedule(spec, task, payload, device, url)
    except Exception as error:  # this task's points fail, the sweep goes on: the rows say why
        rows = failed_rows(spec, task, f"{type(error).__name__}: {error}")
    task_s = round(time.perf_counter() - started, 4)
    # the CPU this task's thread got (its BLAS and PyTorch run in it, one thread each): beside
    # task_s it tells a loaded machine from a slow task
    task_cpu_s = round(time.thread_time() - cpu_started, 4)
    for row in rows:
        row["task_s"], row["task_cpu_s"] = task_s, task_cpu_s
        row["worker"] = worker.address
    return rows


def coordinates(spec, task, t, compensation):
    return {"network": spec["network_name"], "device_model": spec["device_name"], **task.params,
            "seed": task.seed, "time_s": t, "compensation": compensation}


def failed_rows(spec, task, error):
    """The rows of a task that could not run, each with ``error``."""
    return [{**coordinates(spec, task, t, c), **dict.fromkeys(spec["metrics"]), "backend": None,
             "build_id": None, "memxbar_version": spec["version"], "grid_hash": spec["grid_hash"],
             "error": error, "wall_s": None}
            for t, c in spec["schedule"]]


def _delta(after, before):
    return {name: after[name] - before[name] for name in after}


def _schedule(spec, task, payload, device, url):
    network = spec["network"]
    model = spec["device_class"](**task.params)
    cfg = device.info.config
    data = payload[1]
    inferences = network.inferences(data)
    before = device.counters()
    analog, mapping = network.program(payload, device, model, task.seed, spec["read_noise"])
    programming = _delta(device.counters(), before)
    fixed = {f"programming_{name}": programming[name]
             for name in ("cell_writes", "write_pulses", "verify_reads")}
    fixed["programming_energy_nj"] = energy_pj(programming, cfg)["programming"] / 1e3
    fixed.update(backend=url, build_id=f"{device.info.build_id:08x}", memxbar_version=spec["version"],
                 grid_hash=spec["grid_hash"], error="")
    rows, now = [], None
    for t, compensation in spec["schedule"]:
        point_started = time.perf_counter()
        if t != now:
            network.drift(analog, mapping, t)
            now = t
        network.compensate(analog, mapping, None if compensation == "none" else compensation)
        before = device.counters()
        metrics = network.metrics(analog, data)
        events = _delta(device.counters(), before)
        cost = {}
        if inferences:
            per = {name: value / inferences for name, value in events.items()}
            cost = {"energy_pj_per_inference": energy_pj(per, cfg)["total"],
                    "latency_us_per_inference": per["cycles"] / spec["clock_mhz"]}
        rows.append({**coordinates(spec, task, t, compensation), **metrics, **events, **cost, **fixed,
                     "wall_s": round(time.perf_counter() - point_started, 4)})
    return rows
