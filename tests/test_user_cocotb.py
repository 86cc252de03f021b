"""The README's "Your own cocotb test", copied out of the repository and run as a user would."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples():
    """``{name: text}`` of the fenced blocks that follow ``<!-- example: NAME -->`` markers."""
    blocks = re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", README.read_text(), re.DOTALL)
    return dict(blocks)


@pytest.mark.verilator
def test_the_readme_cocotb_example_passes_outside_the_repository(tmp_path):
    examples = readme_examples()
    assert {"test_my_tile.py", "run_my_tile.py", "shell"} <= set(examples)
    for name in ("test_my_tile.py", "run_my_tile.py"):
        (tmp_path / name).write_text(examples[name])
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    env.pop("WAVES", None)
    for line in examples["shell"].strip().splitlines():  # `memxbar verilog ...`, `python run_my_tile.py`
        command = line.split()
        if command[0] == "python":
            command[0] = sys.executable
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "TESTS=1 PASS=1 FAIL=0" in result.stdout + result.stderr
    assert not str(tmp_path).startswith(str(README.parent))
