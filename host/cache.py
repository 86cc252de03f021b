"""Where memxbar keeps what it builds or trains once: ``$MEMXBAR_CACHE`` or ``~/.cache/memxbar``."""

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root():
    """``$MEMXBAR_CACHE`` or ``~/.cache/memxbar`` (Verilator builds, the demo's trained MLP)."""
    # an empty value counts as unset: a cache in whatever directory one stands in is never meant
    return Path(os.environ.get("MEMXBAR_CACHE") or Path.home() / ".cache" / "memxbar")
