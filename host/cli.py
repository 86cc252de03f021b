"""The ``memxbar`` command. Errors print one line and exit with a category code, no traceback."""

import argparse
import json
import sys
from importlib.metadata import entry_points

from . import __version__
from .errors import MemxbarError
from .sweep_cli import add_arguments as add_sweep_arguments

__all__ = ["main"]

EXIT_USAGE = 2  # bad arguments or input
EXIT_DEVICE = 3  # the device or its tools failed


def _info(args):
    from . import open as open_device

    with open_device(args.url) as dev:
        info = dev.info.as_dict()
        if args.json:
            print(json.dumps(info, indent=2))
            return
        cfg = dev.info.config
        print(f"memxbar {__version__} on {args.url}")
        print(f"  tiles        {info['tiles']} x {cfg.rows} rows (inputs) x {cfg.cols} cols (outputs)")
        print(f"  lanes        {cfg.lanes} MACs per tile")
        print(f"  conductance  {cfg.g_bits}-bit levels 0..{cfg.g_max}, differential pairs")
        print(f"  DAC          {cfg.dac_bits}-bit signed codes, +-{cfg.x_max}")
        print(f"  ADC          {cfg.adc_bits}-bit signed codes, +-{cfg.y_max}, "
              f"shift {cfg.adc_shift}, accumulator {cfg.acc_width} bits")
        print(f"  cycles/MVM   {cfg.cycles_per_mvm}")
        print(f"  build id     {info['build_id']}")


def _selftest(args):
    from .selftest import selftest

    options = {"baudrate": args.baud} if args.baud else {}
    figures = selftest(args.url, matrices=args.matrices, say=(lambda line: None) if args.json else print,
                       **options)
    if args.json:
        print(json.dumps(figures, indent=2))
    if not figures["passed"]:
        return EXIT_DEVICE
    return 0


def _demo(args):
    from .demo import demo, plot, table, to_json

    backends = {"model": "model://", "sim": "sim://"}
    url = backends.get(args.backend, args.backend)
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    times = None if args.times is None else [when.strip() for when in args.times.split(",")]
    results = demo(url, seeds=args.seeds, samples=args.samples, clock_hz=args.clock_mhz * 1e6, times=times,
                   progress=not args.quiet, say=say)
    if args.plot != "-":
        plot(results, args.plot)
        results["plot"] = args.plot
    if args.json:
        print(to_json(results))
    else:
        print(table(results))
        if args.plot != "-":
            print(f"plot: {args.plot}")
    return 0


def _parser():
    parser = argparse.ArgumentParser(
        prog="memxbar", description="memxbar: an open FPGA emulator of memristor crossbar tiles")
    parser.add_argument("--version", action="version", version=f"memxbar {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="show a device's geometry, formats and build id")
    info.add_argument("url", nargs="?", default="model://",
                      help="device URL (default: model://, the golden model)")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(run=_info)
    test = commands.add_parser("selftest", help="check a freshly flashed board: link soak and bit-exactness")
    test.add_argument("url", help="serial port or pyserial URL of the board (or sim://)")
    test.add_argument("--baud", type=int, help="UART baud rate (default 3000000)")
    test.add_argument("--matrices", type=int, default=8, help="random matrices in the link soak")
    test.add_argument("--json", action="store_true", help="machine-readable figures")
    test.set_defaults(run=_selftest)
    show = commands.add_parser("demo", help="what PCM noise and drift do to a CNN, and what wins it back")
    show.add_argument("--backend", default="model",
                      help="model (golden model, the default), sim (RTL under Verilator) or a serial port")
    show.add_argument("--seeds", type=int, default=10, help="device seeds to average over (default 10)")
    show.add_argument("--samples", type=int, help="test signals to use (default: all 1000)")
    show.add_argument("--times", help="comma-separated subset of: 1 s,1 h,1 day,1 year (default: all)")
    show.add_argument("--clock-mhz", type=float, default=30.0,
                      help="board clock for the latency estimate (default 30, the ULX3S build)")
    show.add_argument("--plot", default="memxbar-demo.png", help="PNG of accuracy vs time ('-': none)")
    show.add_argument("--json", action="store_true", help="print the results as JSON")
    show.add_argument("--quiet", action="store_true", help="no progress bar")
    show.set_defaults(run=_demo)
    add_sweep_arguments(commands.add_parser("sweep", help="a grid of seeds, device models, times and "
                                      "compensations on Dask (memxbar[sweep])"))
    for entry in entry_points(group="memxbar.commands"):  # e.g. `memxbar sim`, from memxbar.sim
        entry.load()(commands)
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code = args.run(args)
    except (ValueError, TypeError, ImportError) as error:
        print(f"memxbar: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except MemxbarError as error:
        print(f"memxbar: error: {error}", file=sys.stderr)
        return EXIT_DEVICE
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
