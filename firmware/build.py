"""``memxbar build``: a board's bitstream, its timing and resources in ``report.json``.

Amaranth elaborates :class:`BoardTop` for the board's amaranth-boards platform and writes the
design files and the tool commands it would run; this module runs those commands itself, so
it can report progress, add nextpnr's ``--report``, use the tools :mod:`.toolchain` picked, and
reuse a build whose configuration and tool versions are unchanged.
"""

import hashlib
import importlib
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from .. import __version__
from ..errors import MemxbarError
from .board_top import BoardTop
from .toolchain import find_tool

__all__ = ["BuildFailed", "build", "summary"]

#: What each script variable of Amaranth's build script names, per family.
_SCRIPT_TOOLS = {
    "YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr-ice40", "ICEPACK": "icepack",
    "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack",
    "NEXTPNR_GOWIN": "nextpnr-himbaechel", "GOWIN_PACK": "gowin_pack",
}
_STEP_NAMES = {"yosys": "synthesis", "icepack": "bitstream", "ecppack": "bitstream",
               "gowin_pack": "bitstream"}
_OVERRIDES = {
    # SB_MAC16 for the MAC lanes and SB_SPRAM256KA for the cell state are opt-in on the iCE40
    "ice40": {"synth_opts": "-dsp -spram"},
    "ecp5": {},
    "gowin": {},
}
# nextpnr's utilisation cell types -> the report's resource names
_RESOURCES = {
    "ice40": {"ICESTORM_LC": "LC", "ICESTORM_DSP": "DSP", "ICESTORM_RAM": "BRAM", "ICESTORM_SPRAM": "SPRAM"},
    "ecp5": {"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "MULT18X18D": "DSP", "DP16KD": "BRAM"},
    "gowin": {"LUT4": "LUT", "DFF": "FF", "MULT9X9": "DSP", "BSRAM": "BRAM"},
}


class BuildFailed(MemxbarError):
    """A tool failed; the message names it and its log."""


def _platform(board):
    module, _, name = board.platform.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError:
        raise MemxbarError("board builds need amaranth-boards: `pip install 'memxbar[boards]'`") from None
    # amaranth-boards' ULX3S reads OPENFPGALOADER even when it only builds
    os.environ.setdefault("OPENFPGALOADER", "openFPGALoader")
    return cls(toolchain="Apicula") if board.family == "gowin" else cls()


def _commands(script, board):
    """The tool invocations of Amaranth's build script, with our logging and report options."""
    commands = []
    for line in script.splitlines():
        if not line.startswith('"$'):
            continue
        words = shlex.split(line)
        tool = _SCRIPT_TOOLS[words[0].strip("${}")]
        args = words[1:]
        if tool.startswith("nextpnr"):
            args = _nextpnr_args(args, board.family, board.clock_hz / 1e6)
        commands.append((tool, args))
    return commands


def _nextpnr_args(args, family, clock_mhz):
    out, words = [], iter(args)
    for word in words:
        if word == "--quiet":
            continue
        if word == "--log":
            next(words)
            continue
        if family == "gowin" and word in ("--family", "--cst"):
            # the Himbaechel Gowin back end takes these as architecture options
            out += ["--vopt", f"{word[2:]}={next(words)}"]
            continue
        out.append(word)
    # --freq: the Gowin constraint file carries no clock; elsewhere it only backs up the pin's
    return [*out, "--freq", f"{clock_mhz:g}", "--log", "pnr.log", "--report", "pnr.json",
            "--timing-allow-fail"]


def _run(step, total, tool, args, cwd, say):
    """Run one tool in ``cwd``, saying every few seconds that it still runs."""
    label = f"[{step}/{total}] {_STEP_NAMES.get(tool.name, 'place and route')} ({tool.name})"
    log = cwd / f"{tool.name}.log"
    start = time.monotonic()
    say(f"{label} ...")
    with log.open("w") as output:
        process = subprocess.Popen([*tool.command, *args], cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        last = start
        while process.poll() is None:
            time.sleep(0.2)
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                say(f"{label} still running, {last - start:.0f} s")
    elapsed = time.monotonic() - start
    if process.returncode:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise BuildFailed(f"{tool.name} failed (exit {process.returncode}); its log is {log}\n{tail}")
    say(f"{label} done in {elapsed:.0f} s")
    return elapsed


def _resources(board, cwd):
    pnr = json.loads((cwd / "pnr.json").read_text())
    resources = {}
    for cell, name in _RESOURCES[board.family].items():
        use = pnr["utilization"].get(cell)
        if use is not None:
            resources[name] = {"used": use["used"], "total": use["available"]}
    if board.family == "ice40":
        # an LC is a LUT4 and a flip-flop; yosys' cell counts split them
        cells = json.loads((cwd / "stat.json").read_text())["design"]["num_cells_by_type"]
        total = resources["LC"]["total"]
        resources["LUT"] = {"used": cells.get("SB_LUT4", 0), "total": total}
        resources["FF"] = {"used": sum(n for c, n in cells.items() if c.startswith("SB_DFF")), "total": total}
    fmax = {clock: {"achieved_mhz": round(v["achieved"], 2), "constraint_mhz": round(v["constraint"], 2)}
            for clock, v in pnr["fmax"].items()}
    return resources, fmax


def build(board, build_dir=None, say=None, force=False):
    """Build ``board``'s bitstream in ``build_dir`` (default ``build/<board>``); return the report.

    Raises
    ------
    ToolMissing, BuildFailed
    """
    say = say or (lambda line: print(line, flush=True))  # progress shows even through a pipe
    cwd = Path(build_dir or Path("build") / board.name).resolve()
    tools = {name: find_tool(name) for name in _family_tools(board.family)}
    platform = _platform(board)
    overrides = {**_OVERRIDES[board.family], "script_after_synth": "tee -q -o stat.json stat -json"}
    plan = platform.build(BoardTop(board), name="memxbar", do_build=False, **overrides)
    files = {name: (content if isinstance(content, str) else content.decode())
             for name, content in plan.files.items()}
    commands = _commands(files["build_memxbar.sh"], board)
    key = hashlib.sha256(json.dumps([files, commands, {n: t.version for n, t in tools.items()}],
                                    sort_keys=True).encode()).hexdigest()[:16]
    report_path = cwd / "report.json"
    if not force and report_path.exists():
        cached = json.loads(report_path.read_text())
        if cached.get("cache_key") == key and (cwd / cached["bitstream"]).exists():
            say(f"{board.name}: unchanged configuration and tools, reusing the build in {cwd}")
            return cached
    cwd.mkdir(parents=True, exist_ok=True)
    report_path.unlink(missing_ok=True)
    plan.extract(cwd)
    say(f"{board.name}: building a {board.config.rows}x{board.config.cols} tile with "
        f"{board.config.lanes} lanes for the {board.part} in {cwd}")
    seconds = {}
    for step, (name, args) in enumerate(commands, 1):
        seconds[name] = round(_run(step, len(commands), tools[name], args, cwd, say), 1)
    resources, fmax = _resources(board, cwd)
    cfg = board.config
    report = {
        "board": board.name, "title": board.title, "part": board.part, "family": board.family,
        "geometry": {"rows": cfg.rows, "cols": cfg.cols}, "lanes": cfg.lanes, "config": cfg.as_dict(),
        "clock_mhz": board.clock_hz / 1e6, "pll": board.pll, "baud": board.baud,
        "max_payload": board.max_payload, "memory": board.memory,
        "resources": resources, "fmax": fmax,
        "timing_met": all(v["achieved_mhz"] >= v["constraint_mhz"] for v in fmax.values()),
        "peak_macs_per_s": board.peak_macs,
        "build_id": f"{cfg.build_id:08x}",
        "bitstream": board.bitstream,
        "tools": {n: t.version for n, t in tools.items()}, "tool_seconds": seconds,
        "memxbar": __version__, "cache_key": key,
    }
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _family_tools(family):
    return {"ice40": ("yosys", "nextpnr-ice40", "icepack"), "ecp5": ("yosys", "nextpnr-ecp5", "ecppack"),
            "gowin": ("yosys", "nextpnr-himbaechel", "gowin_pack")}[family]


def summary(report, build_dir):
    """The report as a few readable lines."""
    geometry = report["geometry"]
    lines = [f"{report['title']} ({report['part']}): {geometry['rows']}x{geometry['cols']} cells, "
             f"{report['lanes']} MAC lanes at {report['clock_mhz']:g} MHz, "
             f"{report['baud'] / 1e6:g} Mbaud, build id {report['build_id']}"]
    for name, use in report["resources"].items():
        share = 100 * use["used"] / use["total"]
        lines.append(f"  {name:6} {use['used']:>7} / {use['total']:<7} {share:5.1f} %")
    for clock, f in report["fmax"].items():
        verdict = "met" if f["achieved_mhz"] >= f["constraint_mhz"] else "FAILED"
        lines.append(f"  fmax   {clock}: {f['achieved_mhz']:.1f} MHz "
                     f"for {f['constraint_mhz']:.1f} MHz ({verdict})")
    lines.append(f"  peak   {report['peak_macs_per_s'] / 1e6:,.0f} M MAC/s")
    lines.append(f"  bitstream {Path(build_dir) / report['bitstream']}")
    return "\n".join(lines)
