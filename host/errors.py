"""Exceptions a memxbar user can meet, each with a message that says what to do."""

__all__ = ["DeviceClosed", "MemxbarError", "UnsupportedURL"]


class MemxbarError(Exception):
    """Base of memxbar's own errors (bad input raises ``ValueError``/``TypeError`` instead)."""


class UnsupportedURL(MemxbarError, ValueError):
    """``memxbar.open`` was given a URL no backend understands."""


class DeviceClosed(MemxbarError):
    """A device was used after ``close()``."""
