"""``sim://``: a simulated device started for this connection and stopped when it closes.

Registered as the ``sim`` entry point of ``memxbar.backends``, so the host library finds it
without importing the gateware. The URL's query takes TileConfig fields plus ``divisor`` and
``max_payload``, e.g. ``sim://?rows=32&cols=32&lanes=4``.
"""

from memxbar.backends import url_config
from memxbar.backends.serial import SerialBackend

from .device import DEFAULT_DIVISOR, DEFAULT_MAX_PAYLOAD, SimulatedDevice

__all__ = ["SimBackend"]

#: The simulator computes at about 1e6 cycles/s: replies take far longer than on a board.
SIM_TIMEOUT = 10.0


class SimBackend(SerialBackend):
    name = "sim"

    def __init__(self, url, timeout=SIM_TIMEOUT, retries=3):
        config, link = url_config(url, divisor=DEFAULT_DIVISOR, max_payload=DEFAULT_MAX_PAYLOAD)
        self.simulator = SimulatedDevice(config, **link)
        try:
            super().__init__(self.simulator.url, timeout=timeout, retries=retries,
                             expect_build_id=config.build_id)
        except BaseException:
            self.simulator.close()
            raise

    def close(self):
        try:
            super().close()
        finally:
            self.simulator.close()
