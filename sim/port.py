"""The host's port to a simulated device: pyserial's ``socket://`` that says how much it holds.

pyserial's socket port reports ``in_waiting`` as 0 or 1 (whether the socket is readable), so a
reader asking for ``in_waiting`` bytes takes one byte per call: about 40 us a byte in Python,
which bounded ``sim://`` at ~200 64x64 MVMs/s whatever the simulator's speed. Here
``in_waiting`` is the kernel's count of received bytes (``FIONREAD``), so a reply arrives in
one or a few reads.
"""

import array
import fcntl
import termios

from serial.urlhandler.protocol_socket import Serial as _SocketSerial

__all__ = ["SimulatorPort"]


class SimulatorPort(_SocketSerial):
    """``socket://HOST:PORT`` with a byte-exact ``in_waiting``."""

    @property
    def in_waiting(self):
        if not self.is_open:
            return super().in_waiting  # pyserial's own PortNotOpenError
        count = array.array("i", [0])
        fcntl.ioctl(self._socket.fileno(), termios.FIONREAD, count)
        return count[0]
