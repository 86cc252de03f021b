"""The mapping compiler: float matrices of any size onto the tiles of a device.

A :class:`Mapping` owns the tiles of one :class:`memxbar.Device`. Each matrix added to it is
cut into blocks of at most ``rows`` inputs x ``cols`` outputs; the blocks are packed into
disjoint rectangles of the tiles (several small matrices share one physical array, each with
its own cells and so its own device state) and programmed together. A matrix-vector product
runs every block as an MVM on its tile and sums the partial results digitally, in floats:

- **weights**: each block has its own scale ``s = target_max / max|W_block|`` onto
  differential pairs (``G+ = round(s W)`` where positive, ``G- = round(-s W)`` where negative);
- **inputs**: noise management (aihwkit's ``NoiseManagementType.ABS_MAX``): each vector's
  slice is divided by its largest magnitude onto the DAC codes; bound management
  (``BoundManagementType.ITERATIVE``): a vector whose output reaches the ADC's rails is run
  again with the input range halved, up to ``bound_retries`` times;
- **outputs**: ADC codes times ``2**adc_shift * peak / (x_max * s)``, summed over the row
  blocks, then the drift compensation or calibration (:class:`AnalogLinear`), then the bias.

Each block runs as an MVM over its :class:`memxbar.protocol.Window` of the array: the inputs
outside it are 0, so the other blocks' cells, however noisy, add nothing.
"""

import copy
import functools
import os
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import StaleState
from .protocol import Window
from .scratch import scratch
from .validate import float_array, require_finite

__all__ = ["COMPENSATIONS", "WINDOW_EVENTS", "AnalogLinear", "Block", "Mapping", "differential_levels",
           "scaled_mvm"]

# "global": aihwkit's GlobalDriftCompensation (one factor per matrix from the summed
# magnitude of a reference read of all-ones); "column": the same ratio per output column over
# several probe vectors; "calibrated": per-column gain and offset fitted by least squares to
# reads of known probe vectors against the digital product with the programmed weights.
COMPENSATIONS = (None, "global", "column", "calibrated")

#: Events of a layer's RUNs counted on the host for the cells of their windows (AnalogLinear.events).
WINDOW_EVENTS = ("mvms", "cycles", "macs", "adc_conversions", "dac_conversions")

SCRATCH_SIZE = 1 << 14  # elements from which a work array is reused (memxbar.scratch)
PROBES = 16  # reference vectors of the per-column compensation and the calibration


def differential_levels(weights, top):
    """``(g_plus, g_minus, scale)``: ``weights`` as level pairs, ``scale = top / max|W|`` levels per unit."""
    peak = float(np.abs(weights).max())
    scale = top / peak if peak > 0 else 1.0
    return np.clip(np.round(scale * weights), 0, top), np.clip(np.round(-scale * weights), 0, top), scale


def scaled_mvm(run, x, scale, config, bound_retries=0, name="x", original=None):
    """``W x`` of float vectors ``x`` ``(batch, in)`` through ``run(codes) -> ADC codes``.

    Noise management: each vector is divided by its largest magnitude onto the DAC codes.
    Bound management: a vector whose outputs reach the ADC's rail runs again with its input
    range doubled, up to ``bound_retries`` times. The codes come back as floats, times
    ``2**adc_shift * range / (x_max * scale)`` (``scale``: levels per weight unit).
    ``run`` returns a new array (as backends do), which may become the result's memory.

    ``x`` need not have been checked for NaN and infinities: the per-vector peaks find them
    before anything runs (a ``ValueError`` about ``name``, indexed as in ``original``, the
    array ``x`` was reshaped from), so the inputs are read once less.
    """
    kernels = _scale_kernels()
    unit = 2.0**config.adc_shift / (config.x_max * scale)
    out = None
    todo = None  # every vector
    peak = None
    for attempt in range(bound_retries + 1):
        part = x if todo is None else x[todo]
        if kernels is not None:  # one compiled pass each way, the same IEEE operations
            # a reused array only where a fresh one would be faulted in (np.empty is faster below)
            codes = scratch("codes", part.shape, np.int64) if part.size >= SCRATCH_SIZE else np.empty(
                part.shape, dtype=np.int64)
            span = np.empty(len(part))
            if not kernels[0](part, part.view(np.int64), 2.0**attempt, float(config.x_max), codes, span):
                require_finite(name, x if original is None else original)
            adc = run(codes)
            # the floats overwrite the codes they come from: one fresh array a call, not two
            y = adc.view(np.float64) if adc.dtype == np.int64 and adc.flags.writeable else np.empty(adc.shape)
            rail = np.empty(len(adc), dtype=np.bool_)
            kernels[1](adc, unit, span, config.y_max, y, rail)
        else:
            if peak is None:
                # one reduction of |x| beats two of x (max and min) along rows of ~64
                peak = np.abs(x).max(axis=1)
                if not np.isfinite(peak).all():
                    require_finite(name, x if original is None else original)
                peak[peak == 0] = 1.0
            span = peak if todo is None else peak[todo] * 2.0**attempt  # halved signal per retry
            codes = part * (config.x_max / span)[:, None]
            np.round(codes, out=codes)
            adc = run(codes.astype(np.int64))
            y = np.multiply(adc, (unit * span)[:, None])  # int64 codes to float64 in one pass
            rail = None
        if todo is None:
            out = y
        else:
            out[todo] = y
        if attempt == bound_retries:
            break
        if rail is None:
            rail = (adc.max(axis=1) >= config.y_max) | (adc.min(axis=1) <= -config.y_max)
        clipped = np.flatnonzero(rail)
        todo = clipped if todo is None else todo[clipped]
        if not len(todo):
            break
    return out


_compiled = []


def _scale_kernels():
    """``(quantise, dequantise)`` of :mod:`memxbar.fastscale`, or ``None`` without numba or with
    ``MEMXBAR_NUMBA=0``."""
    if not _compiled:
        kernels = None
        if os.environ.get("MEMXBAR_NUMBA", "1") != "0":
            try:
                from .fastscale import dequantise, quantise
            except ImportError:
                pass
            else:
                kernels = (quantise, dequantise)
        _compiled.append(kernels)
    return _compiled[0]


@dataclass(frozen=True)
class Block:
    """``weights[out0:out0+outs, in0:in0+ins]`` on cells ``[col0:col0+outs, row0:row0+ins]`` of a page.

    A page is one tile's worth of cells; page ``p`` lives on tile ``p % device tiles``.
    """

    page: int
    row0: int
    col0: int
    in0: int
    out0: int
    ins: int
    outs: int

    @property
    def weights(self):
        """Index of the block in its weight matrix."""
        return slice(self.out0, self.out0 + self.outs), slice(self.in0, self.in0 + self.ins)

    @property
    def cells(self):
        """Index of the block in a ``(cols, rows)`` array of its tile."""
        return slice(self.col0, self.col0 + self.outs), slice(self.row0, self.row0 + self.ins)

    @functools.cached_property  # per MVM on the hot path; a frozen dataclass caches it all the same
    def window(self):
        """The block's :class:`memxbar.protocol.Window` of its tile."""
        return Window(self.row0, self.ins, self.col0, self.outs)


class _Page:
    """Free rectangles of one tile (guillotine packing): blocks never overlap."""

    def __init__(self, rows, cols):
        self.free = [(0, 0, rows, cols)]  # (row0, col0, rows, cols)

    def place(self, rows, cols):
        fits = [rect for rect in self.free if rect[2] >= rows and rect[3] >= cols]
        if not fits:
            return None
        # best short side fit keeps the big free rectangles big
        rect = min(fits, key=lambda r: (min(r[2] - rows, r[3] - cols), r[0], r[1]))
        self.free.remove(rect)
        r0, c0, nr, nc = rect
        # split along the longer leftover so the larger remainder stays one rectangle
        if nr - rows > nc - cols:
            self.free += [(r0, c0 + cols, rows, nc - cols), (r0 + rows, c0, nr - rows, nc)]
        else:
            self.free += [(r0 + rows, c0, nr - rows, cols), (r0, c0 + cols, nr, nc - cols)]
        self.free = [r for r in self.free if r[2] > 0 and r[3] > 0]
        return r0, c0


class Mapping:
    """Matrices on the tiles of ``device``, programmed with one device model and seed.

    Parameters
    ----------
    device : memxbar.Device
    model : memxbar.DeviceModel, optional
        The device behaviour (:class:`memxbar.PCM`, ...). ``None`` leaves the tiles as they are
        (an ideal build needs ``None``).
    seed : int
        Noise seed of tile ``k`` is ``seed + k``: the same seed gives the same numbers on every
        backend.
    read_noise : {"per_read", "frozen"}, optional
        As :meth:`memxbar.Tile.configure`.
    reprogram : bool
        Allow more matrices than the device has cells: pages beyond the tiles are programmed
        onto them on demand, each time with fresh programming noise and drifted to the
        mapping's current time. Warned, because it costs a full programming per switch.
    bound_retries : int
        Bound management: how often an output on the ADC rail halves the input range.
    """

    def __init__(self, device, model=None, *, seed=0, read_noise=None, reprogram=False, bound_retries=3):
        if not isinstance(bound_retries, int) or not 0 <= bound_retries <= 16:
            raise ValueError(f"bound_retries must be an integer in [0, 16], not {bound_retries!r}")
        self.device = device
        self.config = device.info.config
        self.model = model
        self.seed = seed
        self.read_noise = read_noise
        self.reprogram = reprogram
        self.bound_retries = bound_retries
        self.layers = []
        self.time = 0.0
        # (t, {tile: NoiseIndices before the call}) of each drift() since the last program(): the
        # history that a saved state replays to reach the same conductances and compensations
        self.drifts = []
        self._pages = []
        self._resident = {}  # tile index -> page programmed on it
        self._generation = {}  # tile index -> the tile's generation right after this mapping programmed it
        self._configured = set()
        self._programmed = False

    # -- building ---------------------------------------------------------------------------------

    def add(self, weight, bias=None, compensation=None):
        """Place a float matrix ``(out, in)`` (and a digital bias ``(out,)``); returns its layer."""
        w = float_array("weight", weight, ndim=2)
        b = None if bias is None else float_array("bias", bias, ndim=1)
        if b is not None and b.shape[0] != w.shape[0]:
            raise ValueError(f"bias must have shape ({w.shape[0]},) for a weight of shape {w.shape}, "
                             f"got {b.shape}")
        layer = AnalogLinear(self, w, b, compensation)
        cfg = self.config
        pieces = [(in0, out0, min(cfg.rows, w.shape[1] - in0), min(cfg.cols, w.shape[0] - out0))
                  for in0 in range(0, w.shape[1], cfg.rows) for out0 in range(0, w.shape[0], cfg.cols)]
        blocks = {}
        pages = copy.deepcopy(self._pages)  # a refused matrix leaves no block placed
        try:  # largest first packs tighter
            for in0, out0, ins, outs in sorted(pieces, key=lambda p: -p[2] * p[3]):
                page, row0, col0 = self._place(ins, outs, w.shape)
                blocks[in0, out0] = Block(page, row0, col0, in0, out0, ins, outs)
        except ValueError:
            self._pages = pages
            raise
        layer.blocks = [blocks[in0, out0] for in0, out0, _, _ in pieces]  # partial sums in a fixed order
        layer.scales = [differential_levels(w[b.weights], layer._top)[2] for b in layer.blocks]
        self.layers.append(layer)
        self._programmed = False
        return layer

    def _place(self, rows, cols, shape):
        for number, page in enumerate(self._pages):
            spot = page.place(rows, cols)
            if spot is not None:
                return (number, *spot)
        tiles = self.device.info.tiles
        if len(self._pages) == tiles and not self.reprogram:
            raise ValueError(
                f"a weight of shape {shape} does not fit beside the {len(self.layers)} matrices already "
                f"placed: the device has {tiles} tile(s) of {self.config.rows} inputs x {self.config.cols} "
                f"outputs; use a device with more tiles (model://?tiles=N) or Mapping(..., reprogram=True), "
                f"which reprograms tiles on demand")
        if len(self._pages) == tiles:
            warnings.warn(f"the matrices do not fit the device's {tiles} tile(s): pages are reprogrammed "
                          f"on demand, each switch a full programming with fresh programming noise",
                          stacklevel=3)
        self._pages.append(_Page(self.config.rows, self.config.cols))
        return (len(self._pages) - 1, *self._pages[-1].place(rows, cols))

    @property
    def pages(self):
        """How many tiles' worth of cells the matrices occupy."""
        return len(self._pages)

    # -- the device --------------------------------------------------------------------------------

    def program(self):
        """Configure the tiles (``model``, ``seed``) and program every matrix; time restarts at 0."""
        if not self.layers:
            raise ValueError("nothing to program: add a matrix with mapping.add(weight) first")
        self._resident.clear()
        self.time = 0.0
        self.drifts = []
        for page in range(min(self.pages, self.device.info.tiles)):
            self._load(page)
        self._programmed = True
        for layer in self.layers:
            layer._reference(baseline=True)

    def drift(self, t):
        """All tiles to ``t`` seconds after programming; compensations are read again."""
        self._need_programmed()
        before = self.indices()
        for page in list(self._resident.values()):
            self._tile_for(page).drift(t)
        self.time = float(t)
        self.drifts.append((self.time, before))
        for layer in self.layers:
            layer._reference(baseline=False)

    def indices(self):
        """``{tile index: memxbar.NoiseIndices}`` of the tiles holding this mapping's pages now."""
        return {index: self.device.tile(index).indices for index in sorted(self._resident)}

    def _load(self, page):
        tiles = self.device.info.tiles
        tile = self.device.tile(page % tiles)
        if self.model is not None and tile.index not in self._configured:
            tile.configure(self.model, seed=self.seed + tile.index, read_noise=self.read_noise)
            self._configured.add(tile.index)
        cfg = self.config
        g_plus = np.zeros((cfg.cols, cfg.rows), dtype=np.int64)
        g_minus = np.zeros_like(g_plus)
        for layer in self.layers:
            for block in layer.blocks:
                if block.page == page:
                    g_plus[block.cells], g_minus[block.cells], _ = differential_levels(
                        layer.weight[block.weights], layer._top)
        tile.program_levels(g_plus, g_minus)
        if self.time > 0:
            tile.drift(self.time)
        self._resident[tile.index] = page
        self._generation[tile.index] = tile.generation

    def _tile_for(self, page):
        index = page % self.device.info.tiles
        if self._resident.get(index) != page:
            self._load(page)
        tile = self.device.tile(index)
        if tile.generation != self._generation[index]:
            raise StaleState(f"tile {index} was programmed again since this mapping programmed it "
                             f"(by another Mapping, or tile.program/configure): its cells hold other "
                             f"weights now; call mapping.program() again")
        return tile

    def _need_programmed(self):
        if not self.layers or not self._programmed:
            raise ValueError("the mapping has matrices that are not programmed: call mapping.program() first")

    def counters(self):
        """The device's event counters (cumulative)."""
        return self.device.counters()

    def __repr__(self):
        return (f"<memxbar.Mapping {len(self.layers)} matrices on {self.pages} page(s) of "
                f"{self.config.rows}x{self.config.cols}>")


class AnalogLinear:
    """``y = W x + b`` with ``W`` on crossbar tiles and ``b`` digital; made by :meth:`Mapping.add`.

    ``compensation`` (one of :data:`COMPENSATIONS`) corrects the outputs for drift; it is read
    at programming (the baseline) and at every :meth:`Mapping.drift`, and may be changed at
    any time.
    """

    def __init__(self, mapping, weight, bias, compensation):
        self.mapping = mapping
        self.weight = weight
        self.bias = bias
        self.compensation = compensation
        cfg = mapping.config
        top = mapping.model.target_max(cfg) if mapping.model is not None else cfg.g_max
        self.blocks, self.scales = [], []
        self._top = top
        self._cycles_per_mvm = cfg.cycles_per_mvm
        self._baseline = None
        self._factor = None
        self._gain_offset = None
        self.events = dict.fromkeys(WINDOW_EVENTS, 0)

    def set_weights(self, weight, bias=None):
        """New float values of the same shapes; they reach the cells at the next :meth:`Mapping.program`.

        The placement stays; each block's scale follows the new values.
        """
        w = float_array("weight", weight, ndim=2)
        if w.shape != self.weight.shape:
            raise ValueError(f"weight must keep its shape {self.weight.shape}, got {w.shape}")
        b = None if bias is None else float_array("bias", bias, ndim=1)
        if (b is None) != (self.bias is None) or (b is not None and b.shape != self.bias.shape):
            raise ValueError(f"bias must keep its shape {None if self.bias is None else self.bias.shape}, "
                             f"got {None if b is None else b.shape}")
        self.weight, self.bias = w, b
        self.scales = [differential_levels(w[block.weights], self._top)[2] for block in self.blocks]
        self.mapping._programmed = False

    @property
    def compensation(self):
        return self._compensation

    @compensation.setter
    def compensation(self, value):
        if value not in COMPENSATIONS:
            raise ValueError(f"unknown compensation {value!r}; use one of {COMPENSATIONS}")
        self._compensation = value

    @property
    def shape(self):
        return self.weight.shape

    def __call__(self, x):
        """``(..., in)`` floats -> ``(..., out)`` floats."""
        outs, ins = self.weight.shape
        # one block sees every input before it runs: its scaled_mvm finds NaN (one pass less);
        # with several, a bad input in a later block must be refused before the first runs
        single = len(self.blocks) == 1
        x = float_array("x", x, last_dim=ins, copy=False, finite=not single)
        batch = x.reshape(-1, ins)
        y = self.raw(batch, original=x)
        compensation = self._compensation
        if compensation == "calibrated":
            gain, offset = self._gain_offset
            y = (y - offset) / gain
        elif compensation is not None:
            y = y * self._factor[compensation]
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], outs)

    def raw(self, x, original=None):
        """``W x`` as the tiles compute it, no compensation, no bias: ``(batch, in)`` -> ``(batch, out)``.

        ``x`` must be finite unless the layer has one block (whose run checks it, naming
        ``original``'s indices).
        """
        mapping = self.mapping
        mapping._need_programmed()
        cfg = mapping.config
        if len(self.blocks) == 1:  # the block's floats are the result: no zeros to add them to
            return self._run_block(self.blocks[0], self.scales[0], x, cfg, original)
        y = np.zeros((len(x), self.weight.shape[0]))
        for block, scale in zip(self.blocks, self.scales, strict=True):
            part = x[:, block.in0:block.in0 + block.ins]
            y[:, block.out0:block.out0 + block.outs] += self._run_block(block, scale, part, cfg)
        return y

    def _run_block(self, block, scale, x, cfg, original=None):
        tile = self.mapping._tile_for(block.page)
        window = block.window
        def run(codes):
            self._count(len(codes), block, cfg)
            return tile._run(codes, window)

        return scaled_mvm(run, x, scale, cfg, self.mapping.bound_retries, original=original)

    def _count(self, mvms, block, cfg):
        # what the window uses, counted on the host: the device's counters count the whole
        # array per MVM (it reads every cell), which overstates a small block's cost
        events = self.events
        events["mvms"] += mvms
        events["cycles"] += mvms * self._cycles_per_mvm
        events["macs"] += mvms * block.ins * block.outs
        events["adc_conversions"] += mvms * block.outs
        events["dac_conversions"] += mvms * block.ins

    # -- compensation -----------------------------------------------------------------------------

    def _probes(self):
        ins = self.weight.shape[1]
        signs = np.random.default_rng(0x6D78).choice([-1.0, 1.0], size=(PROBES - 1, ins))
        return np.vstack([np.ones(ins), signs])

    def _reference(self, baseline):
        """Reference reads: at programming the baseline, after a drift the correction factors.

        Read whatever ``compensation`` is, so it can be switched afterwards without a reread.
        """
        probes = self._probes()
        y = self.raw(probes)
        magnitude = {"global": max(float(np.abs(y[0]).sum()), 1e-12),
                     "column": np.maximum(np.abs(y).sum(axis=0), 1e-12)}
        if baseline:
            self._baseline = magnitude
        self._factor = {name: self._baseline[name] / magnitude[name] for name in magnitude}
        expected = probes @ self.weight.T
        self._gain_offset = _fit_columns(expected, y)

    def recalibrate(self):
        """Read the reference vectors again now (a new draw of read noise) and refresh the factors."""
        self._reference(baseline=False)


def _fit_columns(expected, measured):
    """Per column ``measured = gain * expected + offset``, least squares; gain kept away from 0."""
    e_mean, m_mean = expected.mean(axis=0), measured.mean(axis=0)
    e, m = expected - e_mean, measured - m_mean
    var = (e * e).sum(axis=0)
    gain = np.where(var > 0, (e * m).sum(axis=0) / np.where(var > 0, var, 1.0), 1.0)
    gain = np.where(np.abs(gain) > 1e-3, gain, 1.0)
    return gain, m_mean - gain * e_mean
