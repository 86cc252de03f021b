"""``sim://``: a simulated device started for this connection and stopped when it closes.

Registered as the ``sim`` entry point of ``memxbar.backends``, so the host library finds it
without importing the gateware. The URL's query takes TileConfig fields plus ``divisor`` and
``max_payload``, e.g. ``sim://?rows=32&cols=32&lanes=4``, and two words:

- ``top=bytes`` (default) or ``top=pins``: the byte-level top, or the board's top with its UART
  pins driven bit by bit (``divisor`` cycles per bit);
- ``waves=FILE.fst``: write an FST trace of every signal, complete when the device closes.
"""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from memxbar.backends import url_config
from memxbar.backends.serial import SerialBackend

from .device import DEFAULT_DIVISOR, DEFAULT_MAX_PAYLOAD, SimulatedDevice
from .port import SimulatorPort

__all__ = ["SimBackend", "split_sim_url"]

#: The simulator computes at a few million cycles/s: replies take longer than on a board.
SIM_TIMEOUT = 10.0
_WORDS = ("top", "waves")


def split_sim_url(url):
    """``sim://?...`` -> ``(TileConfig, {"divisor":..., "max_payload":...}, {"top":..., "waves":...})``."""
    parts = urlsplit(url)
    try:
        pairs = parse_qsl(parts.query, strict_parsing=bool(parts.query), keep_blank_values=True)
    except ValueError:
        raise ValueError(f"malformed query in {url!r}: expected key=value pairs") from None
    words = {"top": "bytes", "waves": None}
    for key, value in pairs:
        if key in _WORDS:
            words[key] = value
    numeric = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in pairs if k not in _WORDS])))
    config, link = url_config(numeric, divisor=DEFAULT_DIVISOR, max_payload=DEFAULT_MAX_PAYLOAD)
    return config, link, words


class SimBackend(SerialBackend):
    name = "sim"

    def __init__(self, url, timeout=SIM_TIMEOUT, retries=3):
        config, link, words = split_sim_url(url)
        self.simulator = SimulatedDevice(config, **link, **words)
        try:
            port = SimulatorPort(self.simulator.url, timeout=timeout, write_timeout=timeout)
            super().__init__(self.simulator.url, timeout=timeout, retries=retries,
                             expect_build_id=config.build_id, port=port)
        except BaseException:
            self.simulator.close()
            raise

    def close(self):
        try:
            super().close()
        finally:
            self.simulator.close()
