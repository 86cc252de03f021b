"""``memxbar flash``: load a built bitstream onto a board with openFPGALoader or iceprog."""

import shutil
import subprocess
from pathlib import Path

from ..errors import MemxbarError
from .toolchain import ToolMissing

__all__ = ["FlashFailed", "flash", "flash_command"]

_INSTALL = {
    "openFPGALoader": "the Debian package `openfpgaloader` (or https://github.com/trabucayre/openFPGALoader)",
    "iceprog": "the Debian package `fpga-icestorm`",
}


class FlashFailed(MemxbarError):
    """The loader ran and failed."""


def _loaders(board):
    openfpgaloader_board, iceprog = board.loader
    loaders = []
    if openfpgaloader_board:
        loaders.append("openFPGALoader")
    if iceprog:
        loaders.append("iceprog")
    return loaders


def flash_command(board, bitstream, sram=False):
    """The command that loads ``bitstream``: the first installed loader the board takes.

    ``sram`` loads the FPGA until power-off instead of writing the configuration flash.
    Returns ``(command, installed)``; with no loader installed, the preferred one's command.
    """
    loaders = _loaders(board)
    chosen = next((tool for tool in loaders if shutil.which(tool)), loaders[0])
    if chosen == "openFPGALoader":
        command = ["openFPGALoader", "--board", board.loader[0], *([] if sram else ["--write-flash"]),
                   str(bitstream)]
    else:
        command = ["iceprog", *(["-S"] if sram else []), str(bitstream)]
    return command, shutil.which(chosen) is not None


def flash(board, bitstream, sram=False, dry_run=False, say=print):
    """Load ``bitstream`` onto ``board``; with ``dry_run`` only print the command."""
    bitstream = Path(bitstream)
    command, installed = flash_command(board, bitstream, sram)
    if dry_run:
        say(" ".join(command))
        return command
    if not bitstream.exists():
        raise FlashFailed(f"no bitstream at {bitstream}: run `memxbar build --board {board.name}` first")
    if not installed:
        tools = " or ".join(_loaders(board))
        raise ToolMissing(f"flashing the {board.title} needs {tools}: install {_INSTALL[command[0]]}")
    result = subprocess.run(command, check=False)
    if result.returncode:
        raise FlashFailed(f"{command[0]} failed (exit {result.returncode}): is the board plugged in?")
    return command
