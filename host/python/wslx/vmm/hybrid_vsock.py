"""Hybrid vsock, the host side (OpenVMM's --vmbus-vsock-path convention, which the hvsim model follows):
the host reaches guest port P by connecting to the Unix socket PATH and sending "CONNECT P\\n"; the VMM
answers "OK <port>\\n" and the socket then carries the stream. Guest connections to host port P arrive
at PATH_P (wslx.vmm.openvmm.vsock_listen_path), where the host listens."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from .errors import ChannelTimeout
from .openvmm import vsock_connect_request

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
