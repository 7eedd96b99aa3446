"""Typed Gemini errors. A service raises one of these; the dispatcher answers the
guest with its status (wslx.spec.gemini.Err). The host side's own failures
(a guest that stopped answering upcalls, ...) use the same types."""
from __future__ import annotations

from ..spec.gemini import Err


class GeminiError(Exception):
    """Base: `err` is the status the guest receives."""
    err = Err.IO


class UnknownService(GeminiError):
    err = Err.NOSYS


class BadSpan(GeminiError):
    err = Err.FAULT


class TooLarge(GeminiError):
    err = Err.TOOBIG


class Denied(GeminiError):
    err = Err.PERM


class CallTimeout(GeminiError):
    err = Err.TIMEDOUT


class NotFound(GeminiError):
    err = Err.NOENT


class Busy(GeminiError):
    err = Err.BUSY


class Invalid(GeminiError):
    err = Err.INVAL


class ReplyOverflow(GeminiError):
    """The reply does not fit the caller's reply area; `needed` bytes would."""
    err = Err.OVERFLOW

    def __init__(self, message: str, needed: int):
        super().__init__(message)
        self.needed = needed


class VersionUnsupported(GeminiError):
    """A record version (or a HELLO range) the host does not speak; the guest hears the host's range."""
    err = Err.PROTONOSUPPORT


class GeminiProtocolError(GeminiError):
    """The guest broke the protocol on a message the host cannot answer (counted, never fatal)."""
    err = Err.INVAL


class GeminiRemoteError(GeminiError):
    """A call (host-side test client) came back with a non-OK status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_BY_STATUS = {cls.err: cls for cls in (UnknownService, BadSpan, TooLarge, Denied, CallTimeout, NotFound, Busy, Invalid,
                                          VersionUnsupported)}


def from_status(code: int, what: str) -> GeminiError:
    """The exception for a status the checks returned (its err is that status)."""
    try:
        err = Err(code)
    except ValueError:
        err = Err.IO
    e = _BY_STATUS.get(err, GeminiError)(f"{what}: {err.name}")
    e.err = err
    return e
