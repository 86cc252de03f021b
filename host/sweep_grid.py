"""A sweep's grid: what is swept, read from YAML, JSON, a dict or flags, checked, split into tasks.

A **task** is one programming: a seed and one value of every device-model parameter. It runs
the whole schedule (drift to each time, evaluate with each compensation) on one device, so
its numbers depend on nothing outside it: frozen read noise is keyed on the count of drift
calls and per-read noise on the count of MVMs since the tile was configured. A **point** is
one row of the results: a task at one time with one compensation.

The grid's **hash** covers what changes every point's numbers without being a coordinate of
it: the network, the device model, the schedule (times and compensations, in order), the test
samples, the read-noise mode and the clock of the latency estimate. Seeds and parameter values
are coordinates, so a grid grown by more seeds or values resumes where it stopped.
"""

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from .mapping import COMPENSATIONS

__all__ = ["BOUND", "DEFAULT_TIMES", "Grid", "Task", "parse_time", "parse_values"]

BOUND = "worker"  # the backend of a sweep on bound workers: each uses its own device (MEMXBAR_DEVICE)
DEFAULT_TIMES = (1.0, 3600.0, 86400.0, 365.0 * 86400.0)  # the demo's 1 s, 1 h, 1 day, 1 year
_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hour": 3600.0, "day": 86400.0, "d": 86400.0,
          "week": 7 * 86400.0, "year": 365.0 * 86400.0, "y": 365.0 * 86400.0}


def parse_time(value):
    """Seconds from a number or a text such as ``"1 h"``, ``"30min"``, ``"1 year"``, ``"2 days"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-z]*?)s?\s*", value.lower())
        unit = match.group(2) if match else None
        if match and unit in ("", *_UNITS):
            try:
                seconds = float(match.group(1)) * _UNITS.get(unit, 1.0)
            except ValueError:
                seconds = None
        else:
            seconds = None
        if seconds is None:
            raise ValueError(f"time {value!r} is not a number of seconds or a text like '1 h', '1 day', "
                             f"'1 year' (units: {', '.join(_UNITS)})")
    else:
        raise ValueError(f"time {value!r} must be a number of seconds or a text like '1 h'")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"time {value!r} must be a finite time >= 0 seconds")
    return seconds


def _scalar(text):
    """A flag's value: an int, a float, true/false, none, or the text itself."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_values(text):
    """``"0.5,1,2"`` -> ``[0.5, 1, 2]`` (a comma-separated flag value, each parsed as a scalar)."""
    return [_scalar(part) for part in text.split(",") if part.strip()]


def _compensation(value):
    name = None if value in (None, "none", "None") else value
    if name not in COMPENSATIONS:
        raise ValueError(f"unknown compensation {value!r}; use none, global, column or calibrated")
    return name


@dataclass(frozen=True)
class Task:
    """One programming: ``index`` in the grid's order, the device-model ``params`` and the ``seed``."""

    index: int
    params: dict
    seed: int

    @property
    def key(self):
        return json.dumps([self.params, self.seed], sort_keys=True)


@dataclass
class Grid:
    """What a sweep sweeps. Every field has a default: ``Grid()`` is the demo's main job (its CNN
    on PCM) at 10 seeds.

    Parameters
    ----------
    network : str
        A name of :data:`memxbar.sweep_networks.NETWORKS` or ``module:function``.
    backend : str
        Device URL every worker opens (``model://``, ``sim://``, a port), or ``"worker"``: the
        device each worker is bound to (``MEMXBAR_DEVICE``, see :mod:`memxbar.sweep`).
    device : str
        The device-model class: ``pcm``, ``rram``, ``ideal`` (memxbar's) or ``module:Class``.
    params : dict
        Keyword arguments of the device model, each a value or a list of values to sweep.
    seeds : int or list of int
        ``n`` means seeds ``0 .. n-1``.
    times : list
        Drift times after programming, seconds or texts like ``"1 h"``; run in this order.
    compensation : list
        Drift compensations evaluated at every time (``none``, ``global``, ``column``, ``calibrated``).
    samples : int or None
        Test inputs per evaluation (default: all the network's).
    read_noise : {"per_read", "frozen"} or None
        As :meth:`memxbar.Tile.configure` (default: per-read where the build has it).
    clock_mhz : float
        Board clock of the latency estimate.
    """

    network: str = "mnist1d-cnn"
    backend: str = "model://"
    device: str = "pcm"
    params: dict = field(default_factory=dict)
    seeds: object = 10
    times: list = field(default_factory=lambda: list(DEFAULT_TIMES))
    compensation: list = field(default_factory=lambda: ["none", "global"])
    samples: int | None = None
    read_noise: str | None = None
    clock_mhz: float = 30.0

    def __post_init__(self):
        if not isinstance(self.network, str) and not hasattr(self.network, "load"):
            raise ValueError(f"network must be a name or module:function, not {self.network!r}")
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"backend must be a device URL or {BOUND!r}, not {self.backend!r}")
        if not isinstance(self.device, str) and not isinstance(self.device, type):
            raise ValueError(f"device must be pcm, rram, ideal or module:Class, not {self.device!r}")
        if not isinstance(self.params, dict) or not all(isinstance(k, str) for k in self.params):
            raise ValueError(f"params must map parameter names to values or lists, not {self.params!r}")
        self.params = {name: list(v) if isinstance(v, (list, tuple)) else [v]
                       for name, v in self.params.items()}
        for name, values in self.params.items():
            if not values:
                raise ValueError(f"parameter {name!r} has no values")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"parameter {name!r} repeats a value: {values!r}")
        seeds = self.seeds
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                raise ValueError(f"seeds must be a positive integer or a list of seeds, not {seeds!r}")
            seeds = list(range(seeds))
        if not isinstance(seeds, (list, tuple)) or not seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds):
            raise ValueError(f"seeds must be a positive count or a list of integers in [0, 2**32), "
                             f"not {self.seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds!r}")
        self.seeds = list(seeds)
        times = self.times if isinstance(self.times, (list, tuple)) else [self.times]
        self.times = [parse_time(t) for t in times]
        if not self.times or len(set(self.times)) != len(self.times):
            raise ValueError(f"times must list distinct drift times, not {times!r}")
        comps = self.compensation if isinstance(self.compensation, (list, tuple)) else [self.compensation]
        self.compensation = ["none" if _compensation(c) is None else c for c in comps]
        if not self.compensation or len(set(self.compensation)) != len(self.compensation):
            raise ValueError(f"compensation must list distinct modes, not {comps!r}")
        if self.samples is not None and (not isinstance(self.samples, int) or isinstance(self.samples, bool)
                                         or self.samples < 1):
            raise ValueError(f"samples must be a positive integer, not {self.samples!r}")
        if self.read_noise not in (None, "per_read", "frozen"):
            raise ValueError(f"read_noise must be 'per_read' or 'frozen', not {self.read_noise!r}")
        if not isinstance(self.clock_mhz, (int, float)) or isinstance(self.clock_mhz, bool) or \
                not 0 < self.clock_mhz < float("inf"):
            raise ValueError(f"clock_mhz must be a positive number, not {self.clock_mhz!r}")

    # -- reading ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values, **overrides):
        """A grid from a dict (a parsed file); ``overrides`` (not ``None``) win."""
        if not isinstance(values, dict):
            raise ValueError(f"a grid must be a mapping of fields, not {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown grid field(s) {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(sorted(known))}")
        merged = dict(values)
        params = dict(merged.get("params") or {})
        params.update(overrides.pop("params", None) or {})
        merged.update({k: v for k, v in overrides.items() if v is not None})
        merged["params"] = params
        return cls(**merged)

    @classmethod
    def from_file(cls, path, **overrides):
        """A grid from a ``.yaml`` / ``.yml`` or ``.json`` file."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"grid file {str(path)!r} does not exist")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ImportError("a YAML grid needs PyYAML: pip install 'memxbar[sweep]' "
                                  "(or write the grid as JSON)") from None
            try:
                values = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise ValueError(f"grid file {str(path)!r} is not valid YAML: {error}") from None
        elif path.suffix == ".json":
            try:
                values = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"grid file {str(path)!r} is not valid JSON: {error}") from None
        else:
            raise ValueError(f"grid file {str(path)!r}: use .yaml, .yml or .json")
        return cls.from_dict(values or {}, **overrides)

    # -- what it expands to ------------------------------------------------------------------------

    def tasks(self):
        """Every task, in the grid's order: parameters (first varies slowest), then seeds."""
        names = list(self.params)
        combos = itertools.product(*(self.params[name] for name in names))
        pairs = itertools.product(combos, self.seeds)
        return [Task(index, dict(zip(names, values, strict=True)), seed)
                for index, (values, seed) in enumerate(pairs)]

    @property
    def swept(self):
        """Parameters with more than one value, in the grid's order."""
        return [name for name, values in self.params.items() if len(values) > 1]

    def schedule(self):
        """``[(time, compensation), ...]``: the points of one task, in the order they run."""
        return [(t, c) for t in self.times for c in self.compensation]

    def as_dict(self):
        network = self.network if isinstance(self.network, str) else getattr(self.network, "name", "user")
        device = self.device
        if isinstance(device, type):
            device = f"{device.__module__}:{device.__name__}"
        return {"network": network, "backend": self.backend, "device": device, "params": self.params,
                "seeds": self.seeds, "times": self.times, "compensation": self.compensation,
                "samples": self.samples, "read_noise": self.read_noise, "clock_mhz": self.clock_mhz}

    def hash(self, network_name=None):
        """Hex digest of what makes every point's numbers, beside its coordinates (module docstring)."""
        described = self.as_dict()
        keep = {name: described[name] for name in ("device", "times", "compensation", "samples", "read_noise",
                                                   "clock_mhz")}
        keep["network"] = network_name or described["network"]
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]
