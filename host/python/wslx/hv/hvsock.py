"""hv_sock host endpoints: a VMBus channel's rings bridged to a host byte stream (a socketpair), so anything
that speaks over a socket (wslx.agentx.AgentClient) talks to the guest through ring buffers in guest memory.

Data travels in in-band packets whose payload starts with vmpipe_proto_header {pkt_type 1, data_size};
data_size 0 means the peer closed (Linux 6.1 net/vmw_vsock/hyperv_transport.c hvs_send_data,
hvs_channel_cb). A malformed packet from the guest (wrong packet or pipe type, data_size beyond the packet)
ends the connection: the host stream sees EOF and the channel is rescinded (documented host behaviour)."""
from __future__ import annotations

import errno
import queue
import socket

from ..spec.vmbus import HVSOCK_MTU, PIPE_MSG_DATA, VMPIPE_PROTO_HEADER, PacketType
from .errors import HvTimeout, RingError
from .ring import packer

PIPE = packer(VMPIPE_PROTO_HEADER)
TO_HOST_LIMIT = 256 << 10     # guest bytes buffered for a slow host reader before the host stops draining
FROM_HOST_LIMIT = 64 << 10


def packet_chunk(ring_size: int) -> int:
    """Host bytes per packet into a host-to-guest ring of ring_size data bytes: at most the MTU and half the
    ring, so a reader that frees half the ring always has room for the next one."""
    return max(8, min(HVSOCK_MTU, ring_size // 2 - 64))


class HvSockListener:
    """A host port guests connect to (TlConnectRequest); accept() hands out the host end of each
    connection once the guest has opened its channel."""

    def __init__(self, port: int, dial=None):
        self.port = port
        self.dial = dial    # None: accept() hands out socketpair ends; else dial() -> the stream the model bridges
        self._accepted: queue.Queue[socket.socket] = queue.Queue()

    def _deliver(self, sock: socket.socket) -> None:
        self._accepted.put(sock)

    def close(self) -> None:
        """Close connections nobody accepted (accepted ones belong to whoever accepted them)."""
        while True:
            try:
                self._accepted.get_nowait().close()
            except queue.Empty:
                return

    def accept(self, timeout: float) -> socket.socket:
        try:
            return self._accepted.get(timeout=timeout)
        except queue.Empty:
            raise HvTimeout(f"no guest connected to hv_sock port {self.port} within {timeout} s") from None


class HvSockBridge:
    """One open hv_sock channel: guest-to-host ring -> host socket, host socket -> host-to-guest ring."""

    def __init__(self, model_end: socket.socket, reader, writer, signal_guest, log):
        self.sock = model_end
        self.sock.setblocking(False)
        self.reader, self.writer = reader, writer
        self.signal_guest, self.log = signal_guest, log
        self.to_host = bytearray()
        self.from_host = bytearray()
        self.guest_closed = False       # the guest sent data_size 0
        self.host_closed = False        # the host stream reached EOF
        self.eof_sent = False
        self.dead = False
        self.bytes_to_host = self.bytes_to_guest = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def wants_read(self) -> bool:
        return not (self.dead or self.host_closed) and len(self.from_host) < FROM_HOST_LIMIT

    def pump(self) -> bool:
        """Move what can move now; True if anything did. RingError/ValueError from hostile rings propagate
        to the VMBus host, which ends the channel."""
        if self.dead:
            return False
        moved = self._guest_to_host()
        moved |= self._flush_to_host()
        moved |= self._read_host()
        moved |= self._host_to_guest()
        return moved

    def _guest_to_host(self) -> bool:
        moved = False
        while len(self.to_host) < TO_HOST_LIMIT and not self.guest_closed:
            pkt = self.reader.peek()
            if pkt is None:
                break
            ptype, _flags, _tid, payload, nxt = pkt
            if ptype != PacketType.DATA_INBAND or len(payload) < PIPE.size:
                raise RingError(f"hv_sock: packet type {ptype} with {len(payload)} bytes is not pipe data")
            pipe_type, size = PIPE.unpack_from(payload)
            if pipe_type != PIPE_MSG_DATA or size > len(payload) - PIPE.size:
                raise RingError(f"hv_sock: pipe header type {pipe_type} size {size} in a {len(payload)}-byte packet")
            if size == 0:
                self.guest_closed = True
            self.to_host += payload[PIPE.size:PIPE.size + size]
            self.bytes_to_host += size
            if self.reader.commit(nxt):
                self.signal_guest()
            moved = True
        return moved

    def _flush_to_host(self) -> bool:
        moved = False
        while self.to_host:
            try:
                n = self.sock.send(self.to_host)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET):
                    self.to_host.clear()     # the host went away: nobody will read this
                    self.host_closed = True
                    break
                raise
            del self.to_host[:n]
            moved = True
        if self.guest_closed and not self.to_host:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return moved

    def _read_host(self) -> bool:
        if not self.wants_read():
            return False
        try:
            data = self.sock.recv(FROM_HOST_LIMIT - len(self.from_host))
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.host_closed = True
        self.from_host += data
        return True

    def _host_to_guest(self) -> bool:
        moved = False
        chunk = packet_chunk(self.writer.size)
        while self.from_host:
            part = bytes(self.from_host[:chunk])
            if not self._send_packet(part):
                return moved
            del self.from_host[:len(part)]
            self.bytes_to_guest += len(part)
            moved = True
        if self.host_closed and not self.eof_sent and self._send_packet(b""):
            self.eof_sent = True
            moved = True
        return moved

    def _send_packet(self, data: bytes) -> bool:
        payload = PIPE.pack(PIPE_MSG_DATA, len(data)) + data
        r = self.writer.write_packet(PacketType.DATA_INBAND, payload)
        if r is None:
            self.writer.want_space(self.writer.packet_size(len(payload)))
            # the guest may have drained the ring before it could see pending_send_sz: look again after
            r = self.writer.write_packet(PacketType.DATA_INBAND, payload)
            if r is None:
                return False
        self.writer.clear_want()
        if r:
            self.signal_guest()
        return True

    def close(self) -> None:
        self.dead = True
        try:
            self.sock.close()
        except OSError:
            pass


def wait_readable(bridges, timeout: float) -> None:
    import select
    # with no host stream to watch this idles for `timeout` (a halted VP), rather than spinning
    select.select([b for b in bridges if b.wants_read()], [], [], max(0.0, timeout))
