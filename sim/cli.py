"""``memxbar sim``: serve the simulated device until interrupted (registered as an entry point).

Imports nothing heavy at load time, so ``memxbar --help`` stays fast.
"""

import signal

__all__ = ["add_command"]


def add_command(commands):
    parser = commands.add_parser(
        "sim", help="serve the RTL (Verilator) on a TCP port and a pseudo-terminal",
        description="Build (once, cached) and run the device top under Verilator behind a TCP "
                    "port and a pseudo-terminal any serial client opens. The default top takes "
                    "the link's bytes directly; --top pins runs the board's UART too.")
    for name, default in (("rows", 64), ("cols", 64), ("lanes", 8), ("g-bits", 8),
                          ("dac-bits", 7), ("adc-bits", 9)):
        parser.add_argument(f"--{name}", type=int, default=default, help=f"(default {default})")
    parser.add_argument("--divisor", type=int, default=None,
                        help="clock cycles per UART bit (default 4)")
    parser.add_argument("--max-payload", type=int, default=None, help="bytes (default 1024)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--top", choices=("bytes", "pins"), default="bytes",
                        help="bytes: the frame receiver/transmitter fed directly (fast, default); "
                             "pins: the UART pins driven bit by bit at --divisor, as on a board")
    parser.add_argument("--waves", metavar="FILE.fst", default=None,
                        help="write an FST trace of every signal (GTKWave, Surfer); complete on exit")
    parser.set_defaults(run=_serve)


def _serve(args):
    from memxbar.protocol import TileConfig

    from .device import DEFAULT_DIVISOR, DEFAULT_MAX_PAYLOAD, SimulatedDevice

    config = TileConfig(rows=args.rows, cols=args.cols, lanes=args.lanes, g_bits=args.g_bits,
                        dac_bits=args.dac_bits, adc_bits=args.adc_bits)
    print(f"memxbar sim: building/starting a {config.rows}x{config.cols} tile with "
          f"{config.lanes} lanes (build id {config.build_id:08x}) ...", flush=True)
    with SimulatedDevice(config, args.divisor or DEFAULT_DIVISOR, args.max_payload or DEFAULT_MAX_PAYLOAD,
                         args.port, top=args.top, waves=args.waves) as device:
        print(f"serving on {device.url}", flush=True)
        print(f"serving on {device.pty}  (e.g. python -m serial.tools.miniterm {device.pty})",
              flush=True)
        if device.waves is not None:
            print(f"writing waves to {device.waves} (complete when stopped)", flush=True)
        print("Ctrl-C stops it.", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    print("memxbar sim: stopped")
