"""The UART under Verilator against cocotbext-uart, at several baud divisors and +-2% mismatch."""

import pytest

from memxbar.sim.tb_uart import UARTPair


@pytest.mark.verilator
@pytest.mark.parametrize("divisor", [4, 16, 50, 217])
def test_uart_against_cocotbext_uart(divisor, tmp_path):
    from memxbar.sim import verilator

    build = verilator.build(UARTPair(divisor), "memxbar_uart")
    build.run("memxbar.sim.tb_uart", extra_env={"MEMXBAR_UART_DIVISOR": str(divisor)},
              log_file=tmp_path / "sim.log")
