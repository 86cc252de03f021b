"""The built wheel installs into a fresh venv and imports every subpackage from one namespace."""

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["memxbar", "memxbar.protocol", "memxbar.hdl", "memxbar.sim", "memxbar.firmware",
               "memxbar.model", "memxbar.backends.model"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    (path,) = out.glob("memxbar-*.whl")
    return path


def test_wheel_holds_only_the_memxbar_namespace(wheel):
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"memxbar"}


def test_wheel_installs_and_imports_in_a_fresh_venv(wheel, tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True, env=env)
    code = ("import importlib, memxbar, pathlib; "
            f"[importlib.import_module(m) for m in {SUBPACKAGES!r}]; "
            "print(pathlib.Path(memxbar.__file__).parent)")
    where = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True,
                           cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv")
    info = subprocess.run([tmp_path / "venv" / "bin" / "memxbar", "info", "--json"], check=True,
                          capture_output=True, text=True, cwd=tmp_path, env=env).stdout
    assert '"backend": "model"' in info
