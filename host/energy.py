"""Energy of a crossbar's events, for estimates from a device's event counters.

The figures are order-of-magnitude numbers from published designs, not measurements of the
emulator (an FPGA spends its own energy, unrelated to an analog array's). Digital periphery,
buffers and data movement are left out, so the totals are lower bounds of a real chip.

- cell read, one per MAC (``macs``): 1.83 fJ. ISAAC (Shafiee et al., ISCA 2016, table 6): eight
  128x128 arrays draw 2.4 mW with a 100 ns read, 30 pJ per array read.
- ADC conversion (``adc_conversions``): 1.67 pJ at 8 bits, twice that per further bit. ISAAC's
  8-bit 1.2 GS/s ADC draws 2 mW; doubling per bit is the Walden figure of merit (Murmann's ADC
  Performance Survey).
- DAC conversion, one per input row and MVM (``mvms`` x rows): 0.39 pJ per magnitude bit. ISAAC's
  1,024 1-bit DACs draw 4 mW with a 100 ns read; a ``dac_bits`` code counts ``dac_bits - 1`` bits.
- programming pulse (``write_pulses``): 10 pJ. Wong et al., "Phase Change Memory", Proc. IEEE
  98(12), 2010: pulse energies of scaled PCM cells span about 1-100 pJ.
- verify read (``verify_reads``): one cell read plus one ADC conversion.

:func:`energy_pj` prices a device's counters, which count the whole array on every MVM (the
emulated array reads every cell); :func:`window_energy_pj` prices the events a layer's RUNs
use, counted on the host from their windows (:attr:`memxbar.mapping.AnalogLinear.events`):
the cells, ADCs and DACs of the block, as a chip that powers only those would spend.
"""

CELL_READ_PJ = 1.83e-3
ADC_8BIT_PJ = 1.67
DAC_BIT_PJ = 0.39
WRITE_PULSE_PJ = 10.0

__all__ = ["energy_pj", "window_energy_pj"]


def energy_pj(counters, config):
    """Estimated energy in picojoules of the events in ``counters``, by kind, and their ``total``."""
    adc = ADC_8BIT_PJ * 2.0 ** (config.adc_bits - 8)
    parts = {
        "cell_reads": counters["macs"] * CELL_READ_PJ,
        "adc": counters["adc_conversions"] * adc,
        "dac": counters["mvms"] * config.rows * DAC_BIT_PJ * (config.dac_bits - 1),
        "programming": counters["write_pulses"] * WRITE_PULSE_PJ
        + counters["verify_reads"] * (CELL_READ_PJ + adc),
    }
    parts["total"] = sum(parts.values())
    return parts


def window_energy_pj(events, config):
    """Estimated energy in picojoules of a layer's windowed events (``macs``, ``adc_conversions``,
    ``dac_conversions``), by kind, and their ``total``."""
    parts = {
        "cell_reads": events["macs"] * CELL_READ_PJ,
        "adc": events["adc_conversions"] * ADC_8BIT_PJ * 2.0 ** (config.adc_bits - 8),
        "dac": events["dac_conversions"] * DAC_BIT_PJ * (config.dac_bits - 1),
    }
    parts["total"] = sum(parts.values())
    return parts
