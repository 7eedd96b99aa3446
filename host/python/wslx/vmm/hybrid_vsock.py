"""Hybrid vsock, the host side (OpenVMM's --vmbus-vsock-path convention, which the hvsim model follows):
the host reaches guest port P by connecting to the Unix socket PATH and sending "CONNECT P\\n"; the VMM
answers "OK <port>\\n" and the socket then carries the stream. Guest connections to host port P arrive
at PATH_P (wslx.vmm.openvmm.vsock_listen_path), where the host listens."""
from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from .errors import ChannelTimeout, VMError
from .openvmm import vsock_connect_request, vsock_listen_path

REPLY_MAX = 64


def connect(vsock_path: Path | str, port: int, timeout: float) -> socket.socket:
    """Connect to guest port `port` through the VMM's hybrid-vsock socket; ChannelTimeout when the VMM is
    not there, refuses or does not answer within `timeout`."""
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(str(vsock_path))
        s.sendall(vsock_connect_request(port))
        reply = b""
        while not reply.endswith(b"\n"):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(1)
            if not chunk or len(reply) > REPLY_MAX:
                raise ChannelTimeout(f"hybrid vsock {vsock_path}: CONNECT {port} answered {reply!r}, not OK")
            reply += chunk
        if not reply.startswith(b"OK"):
            raise ChannelTimeout(f"hybrid vsock {vsock_path}: CONNECT {port} refused: {reply!r}")
        s.settimeout(None)
        return s
    except OSError as e:
        s.close()
        raise ChannelTimeout(f"hybrid vsock {vsock_path}: CONNECT {port} failed: {e}") from e
    except BaseException:
        s.close()
        raise


class HybridVsockHost:
    """The host side of hybrid vsock for a machine class (a QemuMachine subclass: HvsimMachine, OpenVMMMachine)
    whose VMM serves run_dir/vsock: listen for the guest's connections to host ports, accept them while
    watching the machine (check_alive), connect to guest ports."""

    @property
    def vsock_path(self) -> Path:
        return self._path("vsock")

    # ---- Gemini's named ports as hv_sock ports the guest dials (QemuMachine's stream ports)
    def gemini_streams(self) -> bool:
        return True

    def _stream_listen(self, port: int) -> None:
        self.hvsock_listen(port)

    def _stream_accept(self, port: int, timeout: float) -> socket.socket:
        return self.hvsock_accept(port, timeout)

    def hvsock_listen(self, port: int) -> socket.socket:
        """Listen for the guest's connections to host port `port` (run_dir/vsock_P). Call before launch, with
        a run_dir, so that the guest's first dial finds it."""
        rd = self.run_dir or self._given_run_dir
        if rd is None:
            raise VMError("hvsock_listen before launch needs a run_dir")
        rd.mkdir(parents=True, exist_ok=True)
        path = vsock_listen_path(rd / "vsock", port)
        if path.exists():
            path.unlink()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(path))
        s.listen(4)
        self._listeners[port] = s
        return s

    def hvsock_accept(self, port: int, timeout: float) -> socket.socket:
        """The next guest connection to host port `port`; ChannelTimeout (with the console tail) if none
        arrives in time; GuestPanicked/GuestExited (or the VMM's own error) if the machine dies meanwhile."""
        listener = self._listeners[port]
        deadline = time.monotonic() + timeout
        while True:
            if select.select([listener], [], [], min(0.2, max(0.0, deadline - time.monotonic())))[0]:
                conn, _ = listener.accept()
                self._sockets.append(conn)
                return conn
            self.check_alive(f"waiting for the guest's hv_sock connection to port {port}")
            if time.monotonic() >= deadline:
                raise ChannelTimeout(f"no guest hv_sock connection to host port {port} within {timeout} s "
                                     f"(logs in {self.run_dir})", **self._common())

    def hvsock_connect(self, port: int, timeout: float = 10.0) -> socket.socket:
        """A host-initiated hv_sock connection to guest port `port` ("CONNECT P" on run_dir/vsock)."""
        s = connect(self.vsock_path, port, timeout)
        self._sockets.append(s)
        return s

    def close_listeners(self) -> None:
        for s in self._listeners.values():
            s.close()
        self._listeners.clear()
