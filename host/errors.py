"""Exceptions a memxbar user can meet, each with a message that says what to do."""

__all__ = ["DeviceClosed", "DeviceError", "LinkError", "MemxbarError", "StaleDevice", "StaleState",
           "Unsupported", "UnsupportedURL", "VersionMismatch"]


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


class StaleDevice(DeviceError):
    """The device's epoch is not the one this host holds: it was reset, power-cycled, reflashed,
    or claimed by another client since this host last configured it; its tiles must be
    configured and programmed again."""

    def __init__(self, command, status, device_epoch, host_epoch):
        super().__init__(command, status)
        self.device_epoch, self.host_epoch = device_epoch, host_epoch
        self.args = (f"the device's state changed behind this host (device epoch {device_epoch}, this "
                     f"host's {host_epoch}): it was reset, power-cycled, reflashed or claimed by another "
                     f"client. Configure and program the tile again (tile.configure(...), tile.program(...)) "
                     f"or open the device again",)


class StaleState(MemxbarError):
    """A tile, or a mapped layer, no longer holds the state its user assumes (a call that
    changes it failed on the link, or another owner reprogrammed it); the message says what
    to redo."""
