"""Per-board top-levels and bitstream builds (board registry lands with the open-board issue)."""
