"""Exceptions a memxbar user can meet, each with a message that says what to do."""

__all__ = ["DeviceClosed", "DeviceError", "LinkError", "MemxbarError", "Unsupported", "UnsupportedURL",
           "VersionMismatch"]


class MemxbarError(Exception):
    """Base of memxbar's own errors (bad input raises ``ValueError``/``TypeError`` instead)."""


class UnsupportedURL(MemxbarError, ValueError):
    """``memxbar.open`` was given a URL no backend understands."""


class Unsupported(MemxbarError):
    """The device's build cannot do what was asked; the message names what can."""


class DeviceClosed(MemxbarError):
    """A device was used after ``close()``."""


class LinkError(MemxbarError):
    """The link failed: no valid reply within the retries, or the port went away."""


class DeviceError(MemxbarError):
    """The device answered a command with a status other than OK.

    Attributes
    ----------
    status : memxbar.protocol.frames.Status
    command : memxbar.protocol.frames.Command or int
    """

    def __init__(self, command, status):
        self.command = command
        self.status = status
        name = command.name if hasattr(command, "name") else f"opcode 0x{command:02x}"
        super().__init__(f"the device refused {name}: status {status.name}")


class VersionMismatch(MemxbarError):
    """Host and device disagree on the protocol or the build; the message says what to rebuild."""
