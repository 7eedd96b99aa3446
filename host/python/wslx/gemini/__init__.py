"""Gemini: calls between guest and host over a Portal region, with wake-ups on
the SIGNAL and UPCALL ports (wslx.spec.gemini, docs/gemini.md).

Host side: wslx.gemini.dispatcher.Dispatcher (services as Python callables,
every guest byte validated, typed errors, bounded in-flight calls, upcalls),
wslx.gemini.services (fs.stat/fs.read of an exported directory, exec.run of an
allow-listed program). The guest core is guest/gemini/ (C, freestanding)."""
from .dispatcher import Call, Dispatcher
from .errors import (BadSpan, Busy, CallTimeout, Denied, GeminiError, Invalid, NotFound, ReplyOverflow, TooLarge,
                     UnknownService)

__all__ = ["Call", "Dispatcher", "GeminiError", "BadSpan", "Busy", "CallTimeout", "Denied", "Invalid", "NotFound",
           "ReplyOverflow", "TooLarge", "UnknownService"]
