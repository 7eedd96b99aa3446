"""A long-running guest program that AgentX EXEC starts and the host ends: the base of
wslx.portal.guest.PortalService and wslx.gemini.host.GeminiAgent (and their Track B variants).

A subclass starts it (start, which sets self.proc) and may say how it ends (_end). It is ended
with EOF on its stdin when it has one (STDIN), else with SIGTERM (Track B built-ins read no
stdin). As a context manager it is stopped on the way out; an error while stopping is raised
only when the body raised none (the body's error must not be hidden by it).
"""
from __future__ import annotations

from ..spec.agentx import Signal
from .client import ExitStatus


class GuestService:
    STDIN = True            # a stdin pipe: its EOF asks the program to end

    guest = None            # the booted guest (its .client is the AgentClient)
    proc = None             # the agentx Process, once started
    status: ExitStatus | None = None
    timeout: float = 30.0

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    @property
    def output(self) -> bytes:
        """What the program wrote to its stdout so far."""
        return bytes(self.proc.stdout) if self.proc is not None else b""

    def _end(self) -> None:
        """Ask the running program to end: EOF on its stdin, or SIGTERM without one."""
        if self.STDIN:
            self.proc.close_stdin(timeout=self.timeout)
        else:
            self.guest.client.signal(self.proc.pid, Signal.SIGTERM, timeout=self.timeout)

    def _stop_program(self) -> ExitStatus | None:
        """End the program unless it has ended and wait for its EXIT; None if it never started."""
        if self.proc is None:
            return None
        if self.proc.done:
            self.status = self.proc.status
        else:
            self._end()
            self.status = self.proc.wait(self.timeout)
        return self.status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except Exception:
            if exc[0] is None:
                raise
