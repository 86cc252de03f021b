"""The host API: ``memxbar.open(url)`` -> :class:`Device` -> :class:`Tile`, for every backend."""

from dataclasses import dataclass
from importlib.metadata import entry_points
from urllib.parse import urlsplit

from .errors import DeviceClosed
from .protocol import TileConfig
from .validate import integer_array

__all__ = ["Device", "DeviceInfo", "Tile", "open"]


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

    Obtain tiles from :meth:`Device.tile`; ``out`` is ``cols`` and ``in`` is ``rows``.
    """

    def __init__(self, device, index):
        self._device = device
        self.index = index

    @property
    def config(self):
        return self._device.info.config

    def program_levels(self, g_plus, g_minus):
        """Store conductance levels, ints in ``[0, 2**g_bits - 1]`` shaped ``(cols, rows)``."""
        cfg = self.config
        shape = (cfg.cols, cfg.rows)
        g_plus = integer_array("g_plus", g_plus, 0, cfg.g_max, shape=shape)
        g_minus = integer_array("g_minus", g_minus, 0, cfg.g_max, shape=shape)
        self._device._backend_for_use().program_levels(self.index, g_plus, g_minus)

    def run_codes(self, x_codes):
        """MVMs of DAC codes ``(..., rows)`` in ``[-x_max, x_max]`` -> ADC codes ``(..., cols)``."""
        cfg = self.config
        x = integer_array("x_codes", x_codes, -cfg.x_max, cfg.x_max, last_dim=cfg.rows)
        batch = x.reshape(-1, cfg.rows)
        codes = self._device._backend_for_use().run_codes(self.index, batch)
        return codes.reshape(*x.shape[:-1], cfg.cols)


class Device:
    """A connection to a memxbar device; use as a context manager or call :meth:`close`."""

    def __init__(self, backend):
        self._backend = backend
        self.info = DeviceInfo(backend=backend.name, tiles=backend.tiles,
                               build_id=backend.build_id, config=backend.config)

    def tile(self, index=0):
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"tile index must be an integer, not {index!r}")
        if not 0 <= index < self.info.tiles:
            raise ValueError(f"tile {index} does not exist: the device has {self.info.tiles} "
                             f"tile(s), numbered from 0")
        return Tile(self, index)

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
