"""The simulated device: the Verilated top served on a TCP port and a pseudo-terminal.

Any serial client can open it: ``socket://127.0.0.1:PORT`` for pyserial, or the pty path
for ``python -m serial.tools.miniterm``. The Verilator build is cached on disk by a hash
of the configuration, so only the first start compiles.

Two tops (:mod:`memxbar.hdl.top`): ``"bytes"`` (the default) hands the link's bytes straight
to the frame receiver and takes the transmitter's, ``"pins"`` runs the UART too, bit by bit
at ``divisor`` cycles per bit, as a board does. Both give the same bits; ``"bytes"`` spends no
simulated cycles on the wire.
"""

import os
import select
import subprocess
import time
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Elaboratable, Module

from memxbar.hdl.top import ByteTop, Top
from memxbar.protocol import TileConfig

from . import verilator

__all__ = ["DEFAULT_DIVISOR", "DEFAULT_MAX_PAYLOAD", "TOPS", "SimulatedDevice"]

#: Clock cycles per UART bit in simulation: the fastest the gateware UART is verified at.
DEFAULT_DIVISOR = 4
DEFAULT_MAX_PAYLOAD = 1024
#: the tops a simulated device can run, the default first
TOPS = ("bytes", "pins")


class _WithoutReset(Elaboratable):
    """``device`` in a clock domain without a reset input, for simulation.

    Every register starts at its reset value (Verilog initial values), which is what the
    reset would give; a ``rst`` port, however, feeds every register's next-state logic, and
    Verilator re-evaluates all logic fed by a port on every ``eval()``: measured on the 64x64
    device, that was a third of the simulation's time.
    """

    def __init__(self, device):
        self.device = device
        self.ports = [ClockSignal("sync"), *(signal for _, _, signal in device.signature.flatten(device))]

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.submodules.device = self.device
        return m


class SimulatedDevice:
    """Builds (or reuses) and starts the simulated top; ``close()`` stops it.

    Parameters
    ----------
    config : TileConfig
    divisor : int
        Clock cycles per UART bit (the ``"pins"`` top only).
    max_payload : int
    port : int
        TCP port on 127.0.0.1; 0 picks a free one.
    top : str
        ``"bytes"`` (default) or ``"pins"``.
    waves : str or os.PathLike, optional
        Write an FST trace of every signal here (a separate, slower build, cached too). The
        file is complete once the device is closed.
    """

    def __init__(self, config=None, divisor=DEFAULT_DIVISOR, max_payload=DEFAULT_MAX_PAYLOAD, port=0,
                 top="bytes", waves=None):
        self.config = config or TileConfig()
        if top not in TOPS:
            raise ValueError(f"top must be one of {', '.join(map(repr, TOPS))}, not {top!r}")
        self.top = top
        self.waves = None if waves is None else Path(waves).resolve()
        if self.waves is not None and self.waves.suffix != ".fst":
            raise ValueError(f"waves are written as FST: give a file name ending in .fst, not {str(waves)!r}")
        harness = Path(__file__).with_name("serve.cpp")
        if top == "bytes":
            defines, recipe = ["MEMXBAR_BYTE_TOP"], {"max_payload": max_payload}

            def make():
                return _WithoutReset(ByteTop(self.config, max_payload))
        else:
            defines, recipe = [], {"max_payload": max_payload, "divisor": divisor}

            def make():
                return _WithoutReset(Top(self.config, divisor, max_payload))
        # the recipe finds a cached build without converting the gateware to Verilog again
        executable = verilator.build_standalone(make, f"memxbar_{top}_top", harness, defines=defines,
                                                trace=self.waves is not None,
                                                recipe={"config": self.config.as_dict(), **recipe})
        command = [executable, str(divisor), str(port)]
        if self.waves is not None:
            self.waves.parent.mkdir(parents=True, exist_ok=True)
            command.append(str(self.waves))
        # stdin is a pipe we never write: the simulator exits when this process goes away
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
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
