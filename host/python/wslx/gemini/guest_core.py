"""The guest's Gemini core (guest/gemini/, with the Portal core) compiled for the host as
build/gemini/libgemini_guest.so, driven through cffi: tests and the fuzzer run the real
guest client against the dispatcher over a Portal file, with no VM.

    with Portal.create(path) as portal:
        guest = GuestClient(portal)
        call = guest.call_async("fs", "stat", ["a.txt"], reply_cap=64)
        dispatcher.poll(); guest.poll()
"""
from __future__ import annotations

from ..portal.region import Portal
from ..spec import gemini as spec
from .dispatcher import encode_args
from .native import load
from .errors import GeminiRemoteError


class GuestClient:
    """The C guest client attached to the guest side of `portal`'s region."""

    def __init__(self, portal: Portal, versions: tuple[int, int] | None = None):
        """versions: the record versions this client offers (None: the tree's range)."""
        self.ffi, self.lib = load()
        self.portal = portal
        self._mm_ref = self.ffi.from_buffer(portal._mm)   # keep the buffer alive while we use it
        self.base = self._mm_ref + (len(portal._mm) - len(portal.window))
        self.c = self.ffi.new("struct gemini_client *")
        rc = self.lib.gemini_client_init(self.c, self.base, len(portal.window))
        if rc:
            raise GeminiRemoteError(-rc, f"gemini_client_init: {rc}")
        self.delivered: list[tuple[str, bytes]] = []
        self.queue_limit: int | None = None
        self._deliver = self.ffi.callback("gemini_deliver_fn", self._on_upcall)
        self.lib.gemini_client_set_deliver(self.c, self._deliver, self.ffi.NULL)
        self.subscribed: set[str] = set()
        if versions is not None and self.lib.gemini_client_set_versions(self.c, *versions):
            raise ValueError(f"versions {versions}")

    def hello(self) -> None:
        """Submit the HELLO call (gemini_poll settles the version when its reply comes)."""
        rc = self.lib.gemini_hello(self.c)
        if rc:
            raise GeminiRemoteError(-rc, f"gemini_hello: {rc}")

    @property
    def version(self) -> int:
        """gemini_version(): > 0 negotiated, 0 not yet, -PROTONOSUPPORT no common version."""
        return self.lib.gemini_version(self.c)

    def error_text(self, call) -> bytes | None:
        n = self.ffi.new("uint32_t *")
        p = self.lib.gemini_call_error_text(self.c, call, n)
        return None if p == self.ffi.NULL else bytes(self.ffi.unpack(p, n[0]))

    def _on_upcall(self, _ctx, topic, topic_len, data, data_len):
        t = self.ffi.unpack(topic, topic_len).decode()
        if t not in self.subscribed:
            return -spec.Err.NOENT
        if self.queue_limit is not None and len(self.delivered) >= self.queue_limit:
            return -spec.Err.NOSPC
        self.delivered.append((t, bytes(self.ffi.unpack(self.ffi.cast("char *", data), data_len))))
        return 0

    def call_async(self, service: str, method: str, args: list[str] | bytes = (), reply_cap: int = 4096,
                   timeout_ms: int = 0):
        raw = args if isinstance(args, bytes) else encode_args(list(args))
        call = self.ffi.new("struct gemini_call *")
        rc = self.lib.gemini_call_prepare(self.c, call, service.encode(), method.encode(), raw, len(raw),
                                          reply_cap, timeout_ms)
        if rc:
            raise GeminiRemoteError(-rc, f"prepare {service}.{method}: {rc}")
        rc = self.lib.gemini_call_submit(self.c, call)
        if rc:
            raise GeminiRemoteError(-rc, f"submit {service}.{method}: {rc}")
        return call

    def poll(self) -> int:
        rc = self.lib.gemini_poll(self.c)
        if rc < 0:
            raise GeminiRemoteError(-rc, f"gemini_poll: {rc}")
        return rc

    def reply(self, call) -> bytes:
        p = self.lib.gemini_call_reply(self.c, call)
        if p == self.ffi.NULL:
            raise GeminiRemoteError(call.status, f"call failed: {spec.Err(call.status).name}")
        return bytes(self.ffi.unpack(self.ffi.cast("char *", p), call.result))

    def release(self, call) -> None:
        rc = self.lib.gemini_call_release(self.c, call)
        if rc:
            raise GeminiRemoteError(-rc, f"release: {rc}")
