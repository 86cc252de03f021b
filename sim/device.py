"""The simulated device: the Verilated top served on a TCP port and a pseudo-terminal.

Any serial client can open it: ``socket://127.0.0.1:PORT`` for pyserial, or the pty path
for ``python -m serial.tools.miniterm``. The Verilator build is cached on disk by a hash
of the configuration, so only the first start compiles.
"""

import os
import select
import subprocess
import time
from pathlib import Path

from memxbar.hdl.top import Top
from memxbar.protocol import TileConfig

from . import verilator

__all__ = ["DEFAULT_DIVISOR", "DEFAULT_MAX_PAYLOAD", "SimulatedDevice"]

#: Clock cycles per UART bit in simulation: the fastest the gateware UART is verified at.
DEFAULT_DIVISOR = 4
DEFAULT_MAX_PAYLOAD = 1024


class SimulatedDevice:
    """Builds (or reuses) and starts the simulated top; ``close()`` stops it.

    Parameters
    ----------
    config : TileConfig
    divisor : int
        Clock cycles per UART bit.
    max_payload : int
    port : int
        TCP port on 127.0.0.1; 0 picks a free one.
    """

    def __init__(self, config=None, divisor=DEFAULT_DIVISOR, max_payload=DEFAULT_MAX_PAYLOAD, port=0):
        self.config = config or TileConfig()
        harness = Path(__file__).with_name("serve.cpp")
        executable = verilator.build_standalone(Top(self.config, divisor, max_payload), "memxbar_top",
                                                harness)
        # stdin is a pipe we never write: the simulator exits when this process goes away
        self._process = subprocess.Popen([executable, str(divisor), str(port)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)
        announced = self._read_announcement()
        self.tcp_port = int(announced["tcp"])
        self.pty = announced.get("pty")

    def _read_announcement(self, timeout=10.0):
        """The ``key value`` lines the simulator prints before ``ready``."""
        out = self._process.stdout.fileno()
        text = b""
        deadline = time.monotonic() + timeout
        while b"ready\n" not in text:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(out, 4096) if ready else b""
            if not chunk:
                self.close()
                raise RuntimeError(f"the simulated device did not start; it said {text!r}")
            text += chunk
        return dict(line.partition(" ")[::2] for line in text.decode().splitlines())

    @property
    def url(self):
        return f"socket://127.0.0.1:{self.tcp_port}"

    def close(self):
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
