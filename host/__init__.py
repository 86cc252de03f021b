"""memxbar: an open FPGA emulator of memristor crossbar compute-in-memory tiles.

>>> import memxbar
>>> with memxbar.open("model://") as dev:
...     tile = dev.tile(0)
"""

from importlib.metadata import PackageNotFoundError, version

from .device import Device, DeviceInfo, NoiseIndices, Tile, open
from .devices import PCM, RRAM, DeviceModel, Ideal
from .errors import (
    DeviceClosed,
    DeviceError,
    LinkError,
    MemxbarError,
    StaleDevice,
    StaleState,
    Unsupported,
    UnsupportedURL,
    VersionMismatch,
)
from .mapping import AnalogLinear, Mapping
from .protocol import TileConfig
from .sweep import sweep  # the function; the module stays importable as memxbar.sweep's sys.modules entry

try:
    __version__ = version("memxbar")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["PCM", "RRAM", "AnalogLinear", "Device", "DeviceClosed", "DeviceError", "DeviceInfo",
           "DeviceModel", "Ideal", "LinkError", "Mapping", "MemxbarError", "NoiseIndices", "StaleDevice",
           "StaleState", "Tile", "TileConfig",
           "Unsupported", "UnsupportedURL", "VersionMismatch", "__version__", "open", "sweep"]
