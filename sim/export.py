"""``memxbar verilog``: the tile or the device top as Verilog, and golden vectors to check it.

The Verilog is what Amaranth (its built-in yosys) writes for :class:`memxbar.hdl.Tile`,
:class:`memxbar.hdl.top.Top` (UART pins) or :class:`memxbar.hdl.top.ByteTop` (byte streams):
synthesizable, one module per component, the top named ``--name``. The golden vectors are
``$readmemh`` files computed by the golden model (:func:`memxbar.model.mvm_codes`) with a plain
Verilog testbench that streams them through the tile and checks every ADC code, so a designer
can verify the tile in any simulator without Python.
"""

import json
import re
from pathlib import Path

import numpy as np

__all__ = ["add_command", "component_for", "port_list", "verilog_text", "write_vectors", "write_verilog"]

TOPS = ("tile", "device", "device-bytes")
DEFAULT_NAMES = {"tile": "memxbar_tile", "device": "memxbar_device", "device-bytes": "memxbar_device_bytes"}


def component_for(config, top="tile", divisor=4, max_payload=1024):
    """The Amaranth component behind ``--top``: ``tile``, ``device`` (pins) or ``device-bytes``."""
    from memxbar.hdl import Tile
    from memxbar.hdl.top import ByteTop, Top

    if top == "tile":
        return Tile(config)
    if top == "device":
        return Top(config, divisor, max_payload)
    if top == "device-bytes":
        return ByteTop(config, max_payload)
    raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")


def verilog_text(component, name):
    """``component`` as Verilog with top module ``name`` (Amaranth's own export)."""
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False)


def port_list(text, name):
    """``[(port, "input"|"output", width)]`` of module ``name`` in Verilog ``text``, as declared."""
    start = text.index(f"module {name}(")
    body = text[start:text.index("endmodule", start)]
    ports = []
    for match in re.finditer(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\S+)\s*;", body, re.MULTILINE):
        direction, msb, port = match.groups()
        ports.append((port, direction, int(msb) + 1 if msb else 1))
    return ports


def write_verilog(text, path):
    """Write Verilog ``text`` to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _hex_file(path, words, width):
    digits = max(1, -(-width // 4))
    path.write_text("".join(f"{int(w) & ((1 << width) - 1):0{digits}x}\n" for w in words))


def _pack(layout, values):
    """A ``lib.data`` layout's integer from ``{"a.b": value}``, at the layout's own offsets."""
    from amaranth.lib import data

    word = 0

    def walk(layout, base, prefix):
        nonlocal word
        for name, field in layout:
            key = f"{prefix}{name}"
            if isinstance(field.shape, data.Layout):
                walk(field.shape, base + field.offset, f"{key}.")
            else:
                word |= (int(values.get(key, 0)) & ((1 << field.width) - 1)) << (base + field.offset)

    walk(layout, 0, "")
    return word


def write_vectors(config, folder, name="memxbar_tile", vectors=32, seed=0, text=None):
    """Golden vectors for the tile ``name`` of ``config`` in ``folder``; returns the file paths.

    One programming of random levels through the ``prog`` port, then ``vectors`` input
    vectors (a quarter at the input rails, so the ADC saturates) and their expected ADC codes
    from the golden model. Files: ``prog.hex`` (``prog`` port words, one per cell),
    ``x.hex`` (``rows`` DAC codes per vector), ``y.hex`` (``cols`` ADC codes per vector),
    ``vectors.json`` (configuration, seed, counts) and ``tb_<name>.v`` (the checker).
    ``text`` is the tile's Verilog if already exported (its ports are read from it).
    """
    from memxbar.hdl import prog_layout
    from memxbar.model import mvm_codes
    from memxbar.protocol import cell_address

    if not isinstance(vectors, int) or vectors < 1:
        raise ValueError(f"vectors must be a positive integer, not {vectors!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (config.cols, config.rows)
    g_plus, g_minus = rng.integers(0, config.g_max + 1, (2, *shape))
    x = rng.integers(-config.x_max, config.x_max + 1, (vectors, config.rows))
    rails = rng.random(vectors) < 0.25
    x[rails] = rng.choice([-config.x_max, config.x_max], (int(rails.sum()), config.rows))
    y = mvm_codes(config, g_plus, g_minus, x)

    layout = prog_layout(config)
    cols, rows = np.indices(shape)
    lanes, words = cell_address(config, rows, cols)
    prog = [_pack(layout, {"write": 1, "lane": lane, "word": word, "cell.g_plus": gp, "cell.g_minus": gm})
            for lane, word, gp, gm in zip(lanes.ravel(), words.ravel(), g_plus.ravel(), g_minus.ravel(),
                                          strict=True)]
    prog_width = layout.size
    _hex_file(folder / "prog.hex", prog, prog_width)
    _hex_file(folder / "x.hex", x.ravel(), config.dac_bits)
    _hex_file(folder / "y.hex", y.ravel(), config.adc_bits)
    meta = {"module": name, "config": config.as_dict(), "seed": seed, "vectors": vectors,
            "prog_words": len(prog), "prog_width": prog_width,
            "x_codes": int(x.size), "y_codes": int(y.size)}
    (folder / "vectors.json").write_text(json.dumps(meta, indent=1) + "\n")

    if text is None:
        from memxbar.hdl import Tile

        text = verilog_text(Tile(config), name)
    ports = port_list(text, name)
    bench = folder / f"tb_{name}.v"
    bench.write_text(_testbench(name, ports, config, len(prog), prog_width, x.size, y.size))
    return [folder / "prog.hex", folder / "x.hex", folder / "y.hex", folder / "vectors.json", bench]


def _testbench(name, ports, config, n_prog, prog_width, n_x, n_y):
    driven = {"clk": "clk", "rst": "rst", "prog__payload": "prog_payload", "prog__valid": "prog_valid",
              "prog__ready": "prog_ready", "x__payload": "x_payload", "x__valid": "x_valid",
              "x__ready": "x_ready", "y__payload": "y_payload", "y__valid": "y_valid",
              "y__ready": "y_ready", "readback__ready": "1'b1", "busy": "busy"}
    connections = []
    for port, direction, width in ports:
        if port in driven:
            connections.append(f"    .{port}({driven[port]})")
        elif direction == "input":  # physics ports idle: no CONFIG, no programming, params 0
            connections.append(f"    .{port}({width}'d0)")
        else:
            connections.append(f"    .{port}()")
    joined = ",\n".join(connections)
    # A synchronous testbench: stimulus changes with nonblocking assignments at the rising
    # edge, like RTL, so the result does not depend on a simulator's event order.
    return f"""// Golden-vector testbench of {name}, written by `memxbar verilog --vectors`.
// Programs every cell through `prog`, streams {n_x // config.rows} input vectors through `x` and checks
// every ADC code on `y` (with backpressure: `y` is ready two cycles in three) against y.hex.
// Prints PASS and finishes, or stops with $fatal on the first mismatch or a timeout.
// Run it from this folder. With Verilator (g++ before 13 needs -fcoroutines for --timing):
//   $ verilator --binary --timing -Wno-fatal -CFLAGS -fcoroutines {name}.v tb_{name}.v --top-module tb_{name}
//   $ obj_dir/Vtb_{name}
`timescale 1ns/1ps
module tb_{name};
  localparam N_PROG = {n_prog}, N_X = {n_x}, N_Y = {n_y};
  localparam PROG_W = {prog_width}, X_W = {config.dac_bits}, Y_W = {config.adc_bits};
  localparam TIMEOUT = {20 * (n_prog + n_x + n_y * max(1, config.lanes)) + 100000};

  reg clk = 0, rst = 1;
  always #5 clk = ~clk;

  reg [PROG_W-1:0] prog_mem [0:N_PROG-1];
  reg [X_W-1:0] x_mem [0:N_X-1];
  reg [Y_W-1:0] y_mem [0:N_Y-1];
  initial begin
    $readmemh("prog.hex", prog_mem);
    $readmemh("x.hex", x_mem);
    $readmemh("y.hex", y_mem);
  end

  reg [PROG_W-1:0] prog_payload = 0;
  reg prog_valid = 0;
  wire prog_ready;
  reg [X_W-1:0] x_payload = 0;
  reg x_valid = 0;
  wire x_ready;
  wire [Y_W-1:0] y_payload;
  wire y_valid;
  reg y_ready = 0;
  wire busy;

  {name} dut (
{joined}
  );

  integer cycle = 0, pi = 0, xi = 0, yi = 0, settle = 0;
  reg [1:0] phase = 0;  // 0 reset, 1 program, 2 settle, 3 stream
  always @(posedge clk) begin
    cycle <= cycle + 1;
    if (cycle == 4) begin rst <= 0; phase <= 1; end
    if (cycle > TIMEOUT) $fatal(1, "FAIL: timeout after %0d cycles (%0d of %0d codes seen)", cycle, yi, N_Y);
    if (phase == 1) begin
      if (prog_valid && prog_ready) begin
        if (pi == N_PROG - 1) begin prog_valid <= 0; phase <= 2; end
        else begin pi <= pi + 1; prog_payload <= prog_mem[pi + 1]; end
      end else if (!prog_valid) begin
        prog_valid <= 1; prog_payload <= prog_mem[pi];
      end
    end
    if (phase == 2) begin
      settle <= busy ? 0 : settle + 1;
      if (settle == 8) phase <= 3;
    end
    if (phase == 3) begin
      if (x_valid && x_ready) begin
        if (xi == N_X - 1) x_valid <= 0;
        else begin xi <= xi + 1; x_payload <= x_mem[xi + 1]; end
      end else if (!x_valid && xi == 0) begin
        x_valid <= 1; x_payload <= x_mem[0];
      end
      y_ready <= (cycle % 3) != 0;
      if (y_valid && y_ready) begin
        if (y_payload !== y_mem[yi])
          $fatal(1, "FAIL: vector %0d column %0d: ADC code %0h, expected %0h",
                 yi / {config.cols}, yi % {config.cols}, y_payload, y_mem[yi]);
        if (yi == N_Y - 1) begin
          $display("PASS: %0d vectors, %0d ADC codes match the golden model", N_X / {config.rows}, N_Y);
          $finish;
        end
        yi <= yi + 1;
      end
    end
  end
endmodule
"""


def add_command(commands):
    parser = commands.add_parser(
        "verilog", help="write the tile or the device top as Verilog (and golden vectors)",
        description="Write synthesizable Verilog of the crossbar tile or the whole device, for "
                    "your own design or simulator; --vectors adds $readmemh golden vectors and a "
                    "plain Verilog testbench of the tile.")
    for flag, default in (("rows", 64), ("cols", 64), ("lanes", 8), ("g-bits", 8), ("dac-bits", 7),
                          ("adc-bits", 9)):
        parser.add_argument(f"--{flag}", type=int, default=default, help=f"(default {default})")
    parser.add_argument("--physics", choices=("on", "off"), default="on",
                        help="the device engine (programming noise, drift, read noise); off: ideal tile")
    parser.add_argument("--top", choices=TOPS, default="tile",
                        help="tile: the crossbar alone; device: command engine, framing and UART pins; "
                             "device-bytes: the device with byte streams instead of the UART")
    parser.add_argument("--divisor", type=int, default=4, help="clock cycles per UART bit (device)")
    parser.add_argument("--max-payload", type=int, default=1024, help="frame payload bytes (devices)")
    parser.add_argument("--name", default=None, help="top module name (default memxbar_tile, ...)")
    parser.add_argument("-o", "--output", metavar="FILE", default=None, help="Verilog file to write")
    parser.add_argument("--vectors", metavar="DIR", default=None,
                        help="also write golden vectors and a testbench of the tile into DIR")
    parser.add_argument("--count", type=int, default=32, help="input vectors in --vectors (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the vectors' random levels and inputs")
    parser.set_defaults(run=_run)


def _run(args):
    from memxbar.protocol import TileConfig

    if args.output is None and args.vectors is None:
        raise ValueError("nothing to write: give -o FILE.v and/or --vectors DIR")
    if args.vectors is not None and args.top != "tile":
        raise ValueError(f"--vectors checks the tile; use --top tile, not {args.top!r}")
    config = TileConfig(rows=args.rows, cols=args.cols, lanes=args.lanes, g_bits=args.g_bits,
                        dac_bits=args.dac_bits, adc_bits=args.adc_bits, physics=args.physics == "on")
    name = args.name or DEFAULT_NAMES[args.top]
    text = verilog_text(component_for(config, args.top, args.divisor, args.max_payload), name)
    if args.output is not None:
        path = write_verilog(text, args.output)
        print(f"wrote {path}: module {name}, {len(port_list(text, name))} ports, "
              f"build id {config.build_id:08x}")
    if args.vectors is not None:
        files = write_vectors(config, args.vectors, name, args.count, args.seed, text)
        print(f"wrote {', '.join(str(f) for f in files)}")
        if args.output is None:
            print(f"the testbench instantiates module {name}: write it too with -o {name}.v")
