"""``memxbar build`` and ``memxbar flash``, registered through the ``memxbar.commands`` entry point."""

import json
from pathlib import Path

from .boards import BOARDS, board

__all__ = ["add_commands"]


def _board_of(args):
    chosen = board(args.board)
    geometry = {name: getattr(args, name) for name in ("rows", "cols", "lanes")
                if getattr(args, name, None) is not None}
    if getattr(args, "physics", None) is not None:
        geometry["physics"] = args.physics == "on"
        # on: the board's own read-noise mode where it ships physics (the Tang Nano's tile has
        # frozen noise because per-read lanes do not fit it), per-read lanes elsewhere
        keep = args.physics == "on" and chosen.config.physics
        geometry["per_read_noise"] = chosen.config.per_read_noise if keep else (
            None if args.physics == "on" else False)
    chosen = chosen.with_config(**geometry) if geometry else chosen
    if getattr(args, "clock_mhz", None) is not None:
        chosen = chosen.with_clock(round(args.clock_mhz * 1e6))
    return chosen


def _build_dir(args):
    return Path(args.build_dir or Path("build") / args.board)


def _build(args):
    from .build import BuildFailed, build, summary

    chosen = _board_of(args)
    report = build(chosen, _build_dir(args), force=args.force)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(summary(report, _build_dir(args)))
    if not report["timing_met"]:
        log = _build_dir(args) / "pnr.log"
        raise BuildFailed(f"timing not met at {report['clock_mhz']:g} MHz: see {log}; "
                          "a smaller tile (--rows/--cols/--lanes) or fewer lanes helps")


def _flash(args):
    from .flash import flash

    chosen = board(args.board)
    bitstream = Path(args.bitstream) if args.bitstream else _build_dir(args) / chosen.bitstream
    flash(chosen, bitstream, sram=args.sram, dry_run=args.dry_run)


def add_commands(commands):
    names = ", ".join(BOARDS)
    build = commands.add_parser("build", help="build a board's bitstream and report its timing and resources")
    build.add_argument("--board", required=True, metavar="NAME", help=f"one of: {names}")
    for name in ("rows", "cols", "lanes"):
        build.add_argument(f"--{name}", type=int, help=f"override the board's tile {name}")
    build.add_argument("--physics", choices=("on", "off"),
                       help="build the device engine and noise path (default: the board's choice)")
    build.add_argument("--clock-mhz", type=float,
                       help="design clock (a PLL makes it; must be a multiple of the baud rate)")
    build.add_argument("--build-dir", help="build folder (default: build/NAME)")
    build.add_argument("--force", action="store_true", help="rebuild even if the cached build matches")
    build.add_argument("--json", action="store_true", help="print report.json instead of the summary")
    build.set_defaults(run=_build)

    flash = commands.add_parser("flash", help="load a built bitstream onto a board")
    flash.add_argument("--board", required=True, metavar="NAME", help=f"one of: {names}")
    flash.add_argument("--build-dir", help="where `memxbar build` put it (default: build/NAME)")
    flash.add_argument("--bitstream", help="a bitstream file instead of the build folder's")
    flash.add_argument("--sram", action="store_true", help="load until power-off instead of writing flash")
    flash.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    flash.set_defaults(run=_flash)
