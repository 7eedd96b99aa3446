"""Typed AgentX errors. Everything the codec, client and agents raise for bad
input or a bad peer derives from AgentXError."""
from __future__ import annotations

from ..spec.agentx import ErrorCode, MsgType


class AgentXError(Exception):
    """Base of every AgentX failure."""


class ProtocolError(AgentXError):
    """A frame or payload broke the wire rules. `code` is the ErrorCode an agent
    answers with; `request_id`/`msg_type` are set when the header was readable."""
    code = ErrorCode.EPROTO

    def __init__(self, message: str, *, request_id: int = 0, msg_type: int = 0):
        super().__init__(message)
        self.request_id = request_id
        self.msg_type = msg_type


class Truncated(ProtocolError):
    """Fewer bytes than the header or payload_len promise."""
    code = ErrorCode.EPROTO


class BadMagic(ProtocolError):
    code = ErrorCode.EBADMSG


class BadChecksum(ProtocolError):
    code = ErrorCode.EBADMSG


class UnsupportedVersion(ProtocolError):
    code = ErrorCode.EPROTONOSUPPORT


class BadFlags(ProtocolError):
    code = ErrorCode.EPROTO


class FrameTooLarge(ProtocolError):
    code = ErrorCode.EMSGSIZE


class UnknownType(ProtocolError):
    code = ErrorCode.ENOSYS


class MalformedPayload(ProtocolError):
    code = ErrorCode.EPROTO


class InvalidMessage(AgentXError, ValueError):
    """The caller asked to encode something the spec does not allow (too long,
    wrong type, out of range). Nothing was sent."""


class RemoteError(AgentXError):
    """The agent answered ERROR."""

    def __init__(self, code: int, message: str, request_type: int = 0, request_id: int = 0):
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"errno {code}"
        super().__init__(f"{name}: {message}")
        self.code = code
        self.message = message
        self.request_type = request_type
        self.request_id = request_id


class AgentTimeout(AgentXError, TimeoutError):
    """A wait for the agent ran out of time."""


class ConnectionLost(AgentXError, ConnectionError):
    """The byte stream closed or failed; `reason` says why."""


class StdinClosed(AgentXError, BrokenPipeError):
    """The process's stdin is closed (or it ended): what was sent is dropped, nothing more can be."""


class StdinDropped(AgentXError):
    """The agent dropped stdin bytes sent beyond the STDIN_WINDOW credit (a host-side bug)."""


class OutputGap(ProtocolError):
    """A STDIO frame of a version-2 session started beyond the bytes received so far on its stream:
    output was lost (the agent broke the protocol). `pid`, `stream`, `expected` and `offset` say where."""
    code = ErrorCode.EPROTO

    def __init__(self, message: str, *, pid: int, stream: int, expected: int, offset: int):
        super().__init__(message, msg_type=MsgType.STDIO)
        self.pid, self.stream, self.expected, self.offset = pid, stream, expected, offset
