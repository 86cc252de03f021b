"""The host API: ``memxbar.open(url)`` -> :class:`Device` -> :class:`Tile`, for every backend."""

from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from urllib.parse import urlsplit

import numpy as np

from .devices import DeviceModel, Ideal
from .errors import DeviceClosed, LinkError, StaleDevice, StaleState, Unsupported
from .mapping import differential_levels, scaled_mvm
from .protocol import TileConfig, Window, lane_memory
from .protocol.physics import ReadNoise
from .validate import float_array, integer_array

__all__ = ["Device", "DeviceInfo", "NoiseIndices", "Tile", "open"]


@dataclass(frozen=True)
class NoiseIndices:
    """Where a tile's noise streams stand: the host owns them and every request carries them.

    ``writes`` cells programmed, ``drifts`` drift calls and ``reads`` MVMs since the tile's
    last CONFIG (:mod:`memxbar.protocol.physics`, "Noise keys"). The next programming draws
    the noise of cell write ``writes``, the next drift call is number ``drifts + 1``, the next
    MVM reads with index ``reads``.
    """

    writes: int = 0
    drifts: int = 0
    reads: int = 0


@dataclass(frozen=True)
class DeviceInfo:
    """What a device is: its backend, tile geometry, number formats and build id."""

    backend: str
    tiles: int
    build_id: int
    config: TileConfig

    def __getattr__(self, name):
        # geometry reads as dev.info.rows, dev.info.adc_bits, ... straight from the config
        if name in TileConfig.__dataclass_fields__:
            return getattr(self.config, name)
        raise AttributeError(name)

    def as_dict(self):
        return {"backend": self.backend, "tiles": self.tiles,
                "build_id": f"{self.build_id:08x}", **self.config.as_dict()}


class Tile:
    """One crossbar tile of a device. Shapes follow linear layers: weights ``(out, in)``.

    Obtain tiles from :meth:`Device.tile`; ``out`` is at most ``cols`` and ``in`` at most
    ``rows``. The float API (:meth:`configure`, :meth:`program`, :meth:`drift`,
    :meth:`conductances`, :meth:`matvec`) maps weights onto differential pairs; the code API
    (:meth:`program_levels`, :meth:`run_codes`) talks in the tile's integers.
    """

    def __init__(self, device, index):
        self._device = device
        self.index = index
        self.model = Ideal(headroom=1.0)
        self._configured = None  # (model, seed, read_noise mode, stuck memory) of the last configure
        self._weights = None  # (shape, levels per weight unit) of the programmed matrix
        self._lost = None  # what must be redone ("configure", "program") after a failed call, and why
        self.time = 0.0
        #: :class:`NoiseIndices`: where the tile's noise streams stand.
        self.indices = NoiseIndices()
        #: Counts programmings and configurations: a holder of an older value holds stale cells.
        self.generation = 0

    @property
    def config(self):
        return self._device.info.config

    def _backend(self):
        return self._device._backend_for_use()

    def _use(self, what, allowed=()):
        """The backend for ``what``, unless a failed call left the tile's state unknown."""
        if self._lost is not None and self._lost[0] not in allowed:
            redo, why = self._lost
            steps = ("tile.configure(...) and tile.program(...)" if redo == "configure"
                     else "tile.program(...)")
            raise StaleState(f"tile {self.index} cannot {what}: its state is unknown since {why}; "
                             f"call {steps} again")
        return self._backend()

    def _changing(self, redo, what, call, *args):
        """Run a state-changing backend call; a link failure leaves the state unknown."""
        try:
            return call(*args)
        except StaleDevice as error:
            self._lost = ("configure" if self._configured else "program",
                          "the device's epoch changed behind this host")
            raise error from None
        except LinkError as error:
            if self._lost is None or self._lost[0] != "configure":
                self._lost = (redo, f"a {what} that failed on the link ({error})")
            raise

    # -- the float API --------------------------------------------------------------------------

    def configure(self, model=None, seed=0, read_noise=None, stuck=None):
        """Make the tile behave like ``model`` (default :class:`memxbar.Ideal`); erases it.

        Parameters
        ----------
        model : memxbar.DeviceModel
        seed : int
            In ``[0, 2**32)``; the same seed gives the same noise on every backend.
        read_noise : {"per_read", "frozen"}, optional
            Fresh read noise on every MVM, or sampled at each drift call and held (aihwkit).
            The default is ``per_read`` where the build has it (``info.config.per_read_noise``),
            else ``frozen``.
        stuck : array of int, optional
            Explicit stuck cells ``(2, cols, rows)`` for ``(G+, G-)``: 0 healthy, 1 stuck at
            the top level, 2 stuck at 0. Without it the model's rates decide, per cell.
            Cells of a partial last column group (padding) are healthy.
        """
        self._need_physics("device models")
        model = Ideal(headroom=1.0) if model is None else model
        if not isinstance(model, DeviceModel):
            raise TypeError(f"model must be a memxbar.DeviceModel such as memxbar.PCM(), not {model!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), not {seed!r}")
        modes = {"per_read": ReadNoise.PER_READ, "frozen": ReadNoise.FROZEN}
        cfg = self.config
        if read_noise is None:
            read_noise = "per_read" if cfg.per_read_noise else "frozen"
        if read_noise not in modes:
            raise ValueError(f"unknown read_noise mode {read_noise!r}; use 'per_read' or 'frozen'")
        if read_noise == "per_read" and not cfg.per_read_noise:
            raise Unsupported("this device was built without per-read noise lanes "
                              "(TileConfig.per_read_noise=False): use read_noise='frozen'")
        memory = None
        if stuck is not None:
            codes = integer_array("stuck", stuck, 0, 2, shape=(2, cfg.cols, cfg.rows))
            memory = np.moveaxis(lane_memory(cfg, codes[0], codes[1]), -1, 0).astype(np.int64)
        self._configure((model, int(seed), modes[read_noise], memory))
        self._weights = None

    def _configure(self, configured):
        """CONFIGURE: erase the tile with the given device; every noise index restarts.

        The configuration is the tile's from here on, even if the link fails: programming
        sends it again before it programs.
        """
        model, seed, mode, memory = configured
        cfg = self.config
        backend = self._use("be configured", allowed=("configure", "program"))
        backend.reclaim()  # a device whose epoch moved behind this host is claimed again here
        program, drift = model.compile_program(cfg), model.compile_drift(cfg, 0.0)
        self.model, self._configured = model, configured
        self._changing("configure", "configure", backend.configure, self.index, seed, mode, program,
                       drift, memory)
        self.time, self._lost = 0.0, None
        self.indices = NoiseIndices()
        self.generation += 1

    def _need_physics(self, what):
        if not self.config.physics:
            raise Unsupported(f"this device is an ideal build (TileConfig.physics=False) and has no {what}; "
                              "program() and matvec() work, noise needs a build with physics")

    def program(self, weights):
        """Program a float matrix ``(out, in)`` as differential pairs, ``s = g_max / max|W|``.

        The tile starts at ``t = 0``; cells beyond ``weights`` are programmed to 0.
        """
        cfg = self.config
        w = float_array("weights", weights, ndim=2)
        if w.shape[0] > cfg.cols or w.shape[1] > cfg.rows:
            raise ValueError(f"weights of shape {w.shape} do not fit a tile of {cfg.cols} outputs x "
                             f"{cfg.rows} inputs")
        g_plus = np.zeros((cfg.cols, cfg.rows), dtype=np.int64)
        g_minus = np.zeros_like(g_plus)
        cells = slice(0, w.shape[0]), slice(0, w.shape[1])
        g_plus[cells], g_minus[cells], scale = differential_levels(w, self.model.target_max(cfg))
        self._write_levels(g_plus, g_minus)
        self._weights = (w.shape, scale)

    def _write_levels(self, g_plus, g_minus):
        # Programming restarts the tile from its configuration (CONFIGURE erases it, loads the
        # tables of t = 0 and restarts the noise indices), so the same seed and levels give the
        # same conductances however often and after whatever the tile is programmed.
        if self._configured:
            self._configure(self._configured)
        backend = self._use("be programmed", allowed=("program",))
        backend.reclaim()
        cells = self.config.lanes * self.config.words_per_lane
        self._changing("program", "programming", backend.program_levels, self.index, g_plus, g_minus,
                       self.indices.writes)
        self.indices = replace(self.indices, writes=self.indices.writes + cells)
        self._weights, self.time, self._lost = None, 0.0, None
        self.generation += 1

    def drift(self, t):
        """Move the programmed cells to ``t`` seconds after programming (each cell its own nu).

        Drift is a function of the time since programming: ``drift(3600); drift(86400)`` leaves
        every cell where ``drift(86400)`` alone would, with fresh frozen read noise.
        """
        if not isinstance(t, (int, float, np.floating, np.integer)) or isinstance(t, bool):
            raise TypeError(f"t must be a number of seconds, not {t!r}")
        if not np.isfinite(t) or t < 0:
            raise ValueError(f"t must be a finite time >= 0 seconds since programming, not {t!r}")
        self._need_physics("drift")
        if not self._configured:
            raise StaleState(f"tile {self.index} has no device model to drift: call "
                             f"tile.configure(model, seed=...) and tile.program(W) first (this host has not "
                             f"configured it since it opened the device)")
        backend = self._use("drift")
        drifts = self.indices.drifts + 1
        self._changing("program", "drift", backend.drift, self.index,
                       self.model.compile_drift(self.config, float(t)), drifts)
        self.indices = replace(self.indices, drifts=drifts)
        self.time = float(t)

    def conductances(self):
        """``(g_plus, g_minus)`` in microsiemens, shaped like the programmed weights.

        After :meth:`program_levels` (no weights) the whole tile, ``(cols, rows)``. In
        ``per_read`` mode these exclude the read noise, which every MVM draws afresh.
        """
        cfg = self.config
        outs, ins = self._weights[0] if self._weights else (cfg.cols, cfg.rows)
        lsb = self.model.lsb(cfg)
        g_plus, g_minus = self._use("be read").levels(self.index)
        return g_plus[:outs, :ins] * lsb, g_minus[:outs, :ins] * lsb

    def matvec(self, x):
        """``W @ x`` through the tile: float ``(..., in)`` -> ``(..., out)``, as :meth:`run_codes`.

        Each input vector is scaled by its largest magnitude onto the DAC range (aihwkit's
        noise management) and the ADC codes are scaled back (:func:`memxbar.mapping.scaled_mvm`,
        which also serves the mapping compiler's layers).
        """
        (outs, ins), scale = self._programmed()
        x = float_array("x", x, last_dim=ins, copy=False, finite=False)  # scaled_mvm finds NaN
        window = Window(0, ins, 0, outs)
        y = scaled_mvm(lambda codes: self._run(codes, window), x.reshape(-1, ins), scale, self.config,
                       original=x)
        return y.reshape(*x.shape[:-1], outs)

    def _programmed(self):
        self._use("run MVMs")  # a tile whose state is unknown says so before anything else
        if self._weights is None:
            raise ValueError("the tile holds no weights: call tile.program(W) first")
        return self._weights

    def _run(self, codes, window):
        """RUN at the tile's read index; the index moves on whether or not the link delivered,
        so the next RUN draws what ``model://`` draws for it."""
        backend = self._use("run MVMs")
        indices = self.indices
        reads = indices.reads
        self.indices = NoiseIndices(indices.writes, indices.drifts, reads + len(codes))  # replace() is slow
        try:
            return backend.run_codes(self.index, codes, window, reads)
        except StaleDevice:
            self._lost = ("configure" if self._configured else "program",
                          "the device's epoch changed behind this host")
            raise

    def counters(self):
        """This tile's event counters."""
        return self._backend().tile_counters(self.index)

    # -- the code API ---------------------------------------------------------------------------

    def program_levels(self, g_plus, g_minus):
        """Program target levels, ints in ``[0, 2**g_bits - 1]`` shaped ``(cols, rows)``; ``t = 0``."""
        cfg = self.config
        shape = (cfg.cols, cfg.rows)
        g_plus = integer_array("g_plus", g_plus, 0, cfg.g_max, shape=shape)
        g_minus = integer_array("g_minus", g_minus, 0, cfg.g_max, shape=shape)
        self._write_levels(g_plus, g_minus)

    def run_codes(self, x_codes, window=None):
        """MVMs of DAC codes ``(..., rows)`` in ``[-x_max, x_max]`` -> ADC codes ``(..., cols)``.

        With ``window=(row0, rows, col0, cols)`` (a :class:`memxbar.protocol.Window`) the MVMs
        run on that rectangle of the array: ``x_codes`` has the window's ``rows`` inputs, the
        result its ``cols`` outputs, and every input outside it is 0 (the same numbers as
        padding by hand, with fewer bytes on the link).
        """
        cfg = self.config
        window = Window.full(cfg) if window is None else Window(*window)
        window.check(cfg)
        x = integer_array("x_codes", x_codes, -cfg.x_max, cfg.x_max, last_dim=window.rows)
        batch = x.reshape(-1, window.rows)
        codes = self._run(batch, window)
        return codes.reshape(*x.shape[:-1], window.cols)


class Device:
    """A connection to a memxbar device; use as a context manager or call :meth:`close`."""

    def __init__(self, backend):
        self._backend = backend
        self._tiles = {}
        self.info = DeviceInfo(backend=backend.name, tiles=backend.tiles,
                               build_id=backend.build_id, config=backend.config)

    def tile(self, index=0):
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"tile index must be an integer, not {index!r}")
        if not 0 <= index < self.info.tiles:
            raise ValueError(f"tile {index} does not exist: the device has {self.info.tiles} "
                             f"tile(s), numbered from 0")
        if index not in self._tiles:
            self._tiles[index] = Tile(self, index)
        return self._tiles[index]

    def counters(self):
        """Event counters of the device as a dict (``cycles``, ``mvms``, ``macs``, ...)."""
        return self._backend_for_use().counters()

    def _backend_for_use(self):
        if self._backend is None:
            raise DeviceClosed("the device is closed; open it again with memxbar.open(url)")
        return self._backend

    def close(self):
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._backend is None else self.info.backend
        return f"<memxbar.Device {state} {self.info.rows}x{self.info.cols}>"


def open(url="model://", **options):
    """Open a device by URL.

    ``model://[?rows=..&cols=..&lanes=..&tiles=..]`` is the golden model in process;
    ``sim://[?rows=..&...&divisor=..&max_payload=..]`` starts the RTL under Verilator behind a
    simulated serial port (built once, cached) and stops it on close; any other
    URL is a pyserial port or URL (``/dev/ttyUSB1``, ``COM3``, ``socket://host:port``) with a
    memxbar device behind it. ``options`` go to the serial backend: ``baudrate``, ``timeout``
    (seconds per reply), ``retries``, ``expect_build_id``.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, not {url!r}")
    scheme = urlsplit(url).scheme
    if scheme == "model":
        if options:
            raise TypeError(f"model:// takes no options, got {sorted(options)}")
        from .backends.model import ModelBackend

        return Device(ModelBackend(url))
    plugins = {entry.name: entry for entry in entry_points(group="memxbar.backends")}
    if scheme in plugins:  # e.g. sim://, provided by memxbar.sim without the host importing it
        return Device(plugins[scheme].load()(url, **options))
    from .backends.serial import SerialBackend

    return Device(SerialBackend(url, **options))
