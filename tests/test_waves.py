"""Waves: sim:// and the cocotb testbenches write FST traces named as in the Amaranth source."""

import numpy as np
import pytest

import memxbar
from memxbar.model import mvm_codes

pytestmark = pytest.mark.verilator
pywellen = pytest.importorskip("pywellen", reason="pip install pywellen (memxbar[test] carries it)")


def _signals(path):
    """``{full hierarchical name: pywellen signal}`` of an FST file (Surfer's own reader)."""
    waves = pywellen.Waveform(str(path))
    return {var.full_name: var.signal for var in waves.all_vars()}


def _values(signal):
    """Every value ``signal`` took in the trace (a pywellen signal indexes its (time, value) changes)."""
    return {signal[i][1] for i in range(len(signal))}


@pytest.mark.parametrize("top", ["bytes", "pins"])
def test_sim_url_writes_a_trace_of_hello_and_run_with_amaranth_names(tmp_path, top):
    path = tmp_path / "hello-run.fst"
    query = f"rows=10&cols=7&lanes=3&max_payload=128&top={top}&waves={path}"
    g_plus, g_minus = np.full((7, 10), 15), np.zeros((7, 10), int)
    x = np.arange(-5, 5).reshape(1, 10)
    with memxbar.open(f"sim://?{query}") as dev:  # HELLO on open
        dev.tile(0).program_levels(g_plus, g_minus)
        assert np.array_equal(dev.tile(0).run_codes(x), mvm_codes(dev.info.config, g_plus, g_minus, x))
    signals = _signals(path)
    device = f"TOP.memxbar_{top}_top.device"
    for name in ("receiver.frame_valid", "engine.fsm_state", "transmitter.fsm_state", "tile.x__valid",
                 "tile.y__payload", "idle"):
        assert f"{device}.{name}" in signals, f"{device}.{name} missing from the trace"
    assert _values(signals[f"{device}.receiver.frame_valid"]) == {0, 1}
    assert len(_values(signals[f"{device}.engine.fsm_state"])) >= 5  # HELLO, WRITE, RUN went through
    assert 1 in _values(signals[f"{device}.tile.y__valid"])  # the tile produced outputs


def test_waves_env_makes_cocotb_runs_write_fst(tmp_path, monkeypatch):
    from memxbar.sim import verilator
    from memxbar.sim.tb_uart import UARTPair

    monkeypatch.setenv("WAVES", "1")
    monkeypatch.setenv("MEMXBAR_WAVES_DIR", str(tmp_path))
    build = verilator.build(UARTPair(4), "memxbar_uart")
    untraced = verilator.build(UARTPair(4), "memxbar_uart", waves=False)  # test_uart_rtl's, cached
    assert build.traced and not untraced.traced and build.build_dir != untraced.build_dir
    build.run("memxbar.sim.tb_uart", extra_env={"MEMXBAR_UART_DIVISOR": "4"}, log_file=tmp_path / "sim.log")
    assert build.last_waves.parent == tmp_path and build.last_waves.stat().st_size > 0
    signals = _signals(build.last_waves)
    assert {"memxbar_uart.receiver.rx", "memxbar_uart.transmitter.tx", "memxbar_uart.receiver.fsm_state",
            "memxbar_uart.rx_bytes__valid"} <= set(signals)
    assert _values(signals["memxbar_uart.rx_bytes__valid"]) == {0, 1}
