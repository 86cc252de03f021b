"""Where memxbar keeps what it builds or trains once: ``$MEMXBAR_CACHE`` or ``~/.cache/memxbar``."""

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root():
    """``$MEMXBAR_CACHE`` or ``~/.cache/memxbar`` (Verilator builds, the demo's trained MLP)."""
    return Path(os.environ.get("MEMXBAR_CACHE", Path.home() / ".cache" / "memxbar"))
