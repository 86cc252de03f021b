"""``memxbar sweep GRID.yaml|GRID.json [flags]``: :func:`memxbar.sweep` from the command line.

Flags override the grid file's fields; ``--param NAME=V1,V2`` sweeps a keyword argument of
the device model (any the class takes, e.g. ``--param read_noise=0.01,0.03``).
"""

import json
import sys

from .sweep_grid import parse_values

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """The ``sweep`` subcommand's arguments on ``parser``."""
    parser.add_argument("grid", nargs="?", help="grid file (.yaml, .yml or .json); flags override its fields")
    what = parser.add_argument_group("what to sweep")
    what.add_argument("--network", help="mnist1d-cnn (the demo's main job, default), mnist1d-cnn-hwa (its "
                      "hardware-aware fine-tune), digits-mlp, or module:function returning a "
                      "memxbar.sweep_networks.Network")
    what.add_argument("--model", help="your own model factory or checkpoint as module:function (with "
                      "--evaluate and --data)")
    what.add_argument("--evaluate", help="your metric as module:function(model, data) -> float or dict")
    what.add_argument("--data", help="your data as module:function() -> (x, y, ...)")
    what.add_argument("--backend", help="device URL every worker opens (default model://): model://, sim://, "
                      "a serial port; 'worker' for each worker's own MEMXBAR_DEVICE")
    what.add_argument("--device", help="device model: pcm (default), rram, ideal or module:Class")
    what.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2,...",
                      help="a device-model keyword argument and its values (repeatable)")
    what.add_argument("--seeds", help="number of seeds (0..N-1) or a list a,b,c (default 10)")
    what.add_argument("--times", help="drift times, e.g. 1,1h,1day,1year (default)")
    what.add_argument("--compensation", help="compensations at every time, e.g. none,global (default)")
    what.add_argument("--samples", type=int, help="test inputs per evaluation (default: all)")
    what.add_argument("--read-noise", choices=("per_read", "frozen"), help="read-noise mode")
    what.add_argument("--clock-mhz", type=float, help="board clock of the latency estimate (default 30)")
    where = parser.add_argument_group("where to run")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler")
    where.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core)")
    where.add_argument("--devices", metavar="URL,URL,...",
                       help="one local worker bound to each device URL (boards or sim:// devices)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="memxbar-sweep",
                     help="writes OUT.csv and OUT.json (default memxbar-sweep)")
    out.add_argument("--no-resume", action="store_true", help="rerun every point even if OUT.json has it")
    out.add_argument("--plot", default=None,
                     help="PNG of mean and spread vs --axis (default OUT.png; '-': none)")
    out.add_argument("--axis", help="the plot's x axis: a swept parameter (default the first) or time_s")
    out.add_argument("--json", action="store_true", help="print the rows as JSON instead of the summary")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def _params(entries):
    params = {}
    for entry in entries:
        name, equals, values = entry.partition("=")
        if not equals or not name.strip() or not values.strip():
            raise ValueError(f"--param {entry!r} must be NAME=V1,V2,...")
        params[name.strip()] = parse_values(values)
    return params


def _seeds(text):
    if text is None:
        return None
    values = parse_values(text)
    if len(values) == 1 and "," not in text:
        return values[0]
    return values


def _list(text):
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def run(args):
    from .sweep import sweep

    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    fields = {"network": args.network, "backend": args.backend, "device": args.device,
              "params": _params(args.param), "seeds": _seeds(args.seeds), "times": _list(args.times),
              "compensation": _list(args.compensation), "samples": args.samples,
              "read_noise": args.read_noise, "clock_mhz": args.clock_mhz}
    result = sweep(args.grid, model=args.model, data=args.data, evaluate=args.evaluate, output=args.out,
                   resume=not args.no_resume, scheduler=args.scheduler, workers=args.workers,
                   devices=_list(args.devices), progress=not args.quiet, say=say, **fields)
    plot = args.plot if args.plot is not None else f"{args.out}.png"
    if plot != "-" and result.metrics and len(result.failed) < len(result.rows):
        result.plot(plot, axis=args.axis)
    if args.json:
        print(json.dumps(result.rows, indent=1))
    else:
        print(result.summary())
        meta = result.meta
        print(f"{len(result.rows)} points ({len(meta['grid']['seeds'])} seeds) on {meta['workers']} "
              f"worker(s), build {meta['build_id']}, {meta['seconds']:.1f} s; wrote {args.out}.csv, "
              f"{args.out}.json" + (f", {plot}" if plot != "-" else ""))
    return 3 if result.failed else 0
