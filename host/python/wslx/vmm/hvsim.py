"""HvsimMachine: QEMU (TCG) beside the wslx.hv model, so a guest's Hyper-V code runs end to end.

A QemuMachine (same context manager, run directory, logs, typed errors, graceful-then-forced shutdown)
whose launch first starts the model process (wslx.vmm.hvsim_model, the ivshmem-doorbell server) and
whose QEMU gets, besides the usual devices:
    -object memory-backend-file,id=hvsim-ram,size=RAM,mem-path=RUN/guest-ram,share=on
    -machine memory-backend=hvsim-ram          guest RAM in a file the model maps (share=on is required)
    -chardev socket,path=RUN/ivshmem.sock,id=hvsim
    -device ivshmem-doorbell,chardev=hvsim,vectors=N   trap requests one way, MSI-X the other
(shared/reference/hvsim-facts.md). The run directory gains:
    model.log       the model's log (its tracebacks too)
    guest-ram       guest RAM (sparse)
    ivshmem.sock    the model's ivshmem server
    vsock           hybrid vsock: the host reaches guest port P with "CONNECT P\\n" here
    vsock_P         guest connections to host port P arrive here (hvsock_listen(P) before launch)
Gemini's named ports (named_ports=[its SIGNAL and UPCALL names]) are hv_sock ports here unless the
profile is 'none': the guest dials each one's port number (wslx.spec.gemini) and named_port_socket(name)
accepts that connection (QemuMachine's stream ports), so wslx.gemini uses the same call as with
QEMU's virtio-serial ports.

The model is ended with QEMU (after it: SIGTERM, then SIGKILL), dies with its owner (PDEATHSIG), and a
model that exits or fails makes check_alive() raise ModelFailed, naming model.log.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ..spec import hvsim as hvsim_spec
from .errors import LaunchError, VMError
from .hybrid_vsock import HybridVsockHost
from .procs import processes
from .qemu import OWNER_ENV, SESSION_ENV, QemuMachine, _make_preexec

MODEL_MODULE = "wslx.vmm.hvsim_model"
MODEL_READY_TIMEOUT = 20.0
NATIVE_ENV = "WSLX_HVSIM_NATIVE"
HV_PROFILES = ("hyperv", "openvmm-kvm", "none")


class ModelFailed(VMError):
    """The hvsim model process exited or failed while the guest ran (its log: model.log)."""


class HvsimMachine(HybridVsockHost, QemuMachine):
    """QemuMachine plus the Hyper-V model. Extra keywords: hv_profile ('hyperv', 'openvmm-kvm', 'none'),
    hvsock_ports (host ports guests may connect to; each is bridged to run_dir/vsock_P),
    model_raise_after (tests: the model fails at that trap request), model_answer_delay_us (tests: the
    model answers each trap that late), idle_poll_ns (how long an idle guest
    polls for the model's interrupts before it halts: the host's halt-polling setting, as KVM's
    halt_poll_ns), native (the model's hv_sock hot path in C when build/hv/libhvrelay.so is built; None:
    the environment's WSLX_HVSIM_NATIVE, on unless it is 0)."""

    def __init__(self, *args, hv_profile: str = "hyperv", hvsock_ports=(), model_raise_after: int = 0,
                 model_answer_delay_us: int = 0,
                 idle_poll_ns: int = hvsim_spec.IDLE_POLL_NS, native: bool | None = None, **kw):
        if hv_profile not in HV_PROFILES:
            raise ValueError(f"hv_profile must be one of {HV_PROFILES}, not {hv_profile!r}")
        self.hv_profile = hv_profile              # before QemuMachine's init asks gemini_streams()
        super().__init__(*args, **kw)
        self.hvsock_ports = list(hvsock_ports) + [p for p in self.stream_ports.values() if p not in hvsock_ports]
        self.model_raise_after = model_raise_after
        self.model_answer_delay_us = model_answer_delay_us
        self.idle_poll_ns = idle_poll_ns
        self.native = native if native is not None else os.environ.get(NATIVE_ENV, "1") != "0"
        self.model: subprocess.Popen | None = None
        self._model_log = None
        self._listeners: dict[int, socket.socket] = {}

    def hvsock_listen(self, port: int) -> socket.socket:
        if port not in self.hvsock_ports:     # the model bridges guest connections to this port
            self.hvsock_ports.append(port)
        return super().hvsock_listen(port)

    def gemini_streams(self) -> bool:
        """Gemini's named ports are hv_sock ports when the guest has Hyper-V (profile 'none': virtio-serial)."""
        return self.hv_profile != "none"

    # ---- paths
    @property
    def model_log(self) -> Path:
        return self._path("model.log")

    @property
    def ram_file(self) -> Path:
        return self._path("guest-ram")

    def ram_bytes(self) -> int:
        return int(self.memory) << 20

    # ---- command line
    def build_cmdline(self) -> list[str]:
        args = super().build_cmdline()
        return args + [
            "-object", f"memory-backend-file,id=hvsim-ram,size={self.ram_bytes()},mem-path={self.ram_file},share=on",
            "-machine", "memory-backend=hvsim-ram",
            "-chardev", f"socket,path={self._path('ivshmem.sock')},id=hvsim",
            "-device", f"ivshmem-doorbell,chardev=hvsim,vectors={hvsim_spec.MSIX_VECTORS}"]

    # ---- launch: the model first
    def _start_process(self) -> None:
        if self._given_run_dir is None:
            import tempfile
            from .qemu import default_run_root
            self._given_run_dir = Path(tempfile.mkdtemp(prefix="wslx-run-", dir=default_run_root()))
        self.run_dir = self._given_run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._start_model()
        try:
            super()._start_process()
        except BaseException:
            self._stop_model()
            raise

    def _start_model(self) -> None:
        for n in ("ivshmem.sock", "vsock"):
            try:
                os.unlink(self._path(n))
            except FileNotFoundError:
                pass
        with open(self.ram_file, "wb") as f:
            f.truncate(self.ram_bytes())
        argv = [sys.executable, "-m", MODEL_MODULE, "--run-dir", str(self.run_dir), "--ram-file", str(self.ram_file),
                "--ram-size", str(self.ram_bytes()), "--profile", self.hv_profile, "--vsock-path", str(self.vsock_path)]
        for p in self.hvsock_ports:
            argv += ["--listen-port", str(p)]
        if self.model_raise_after:
            argv += ["--raise-after", str(self.model_raise_after)]
        if self.model_answer_delay_us:
            argv += ["--answer-delay-us", str(self.model_answer_delay_us)]
        argv += ["--idle-poll-ns", str(self.idle_poll_ns), "--native" if self.native else "--no-native"]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        env[OWNER_ENV] = str(os.getpid())
        env[SESSION_ENV] = os.environ.get(SESSION_ENV, str(os.getpid()))
        self._model_log = open(self.model_log, "ab")
        try:
            self.model = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._model_log,
                                          env=env, start_new_session=True, preexec_fn=_make_preexec(os.getpid()),
                                          close_fds=True)
        except OSError as e:
            self._model_log.close()
            raise LaunchError(f"cannot start the hvsim model: {e}", cmdline=argv, log_dir=self.run_dir) from e
        # ready once it listens on ivshmem.sock (one line on stdout), within a timeout
        ready = select.select([self.model.stdout], [], [], MODEL_READY_TIMEOUT)[0]
        line = self.model.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self._stop_model()
            raise LaunchError(f"the hvsim model did not come up within {MODEL_READY_TIMEOUT} s "
                              f"(model log {self.model_log})", exitcode=self.model.returncode, cmdline=argv,
                              output=self._model_log_text(), log_dir=self.run_dir)
        self._log_fn(f"[vm {self.name}] hvsim model pid {self.model.pid} ({self.hv_profile}) listening")

    def _model_log_text(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.model_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self, what: str = "") -> None:
        super().check_alive(what)
        if self.model is not None and self.model.poll() is not None:
            raise ModelFailed(f"the hvsim model exited with code {self.model.returncode}"
                              f"{' while ' + what if what else ''} (model log {self.model_log}):\n"
                              f"{self._model_log_text(15)}", **self._common())

    # ---- shutdown: QEMU first (the model ends when QEMU disconnects), then the model
    def shutdown(self, **kw) -> int | None:
        try:
            return super().shutdown(**kw)
        finally:
            self._stop_model()

    def _kill_now(self) -> None:
        super()._kill_now()
        self._stop_model()

    def _stop_model(self, grace: float = 3.0) -> None:
        m = self.model
        if m is None:
            return
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if m.poll() is not None:
                break
            if sig is not None:
                try:
                    os.killpg(m.pid, sig)
                except ProcessLookupError:
                    pass
            try:
                m.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if m.poll() is None:
            m.wait(5)
        if m.stdout:
            m.stdout.close()
        if self._model_log is not None:
            self._model_log.close()
            self._model_log = None
        self.close_listeners()


def leftover_model_processes(marker: str | None = None) -> list[tuple[int, str]]:
    """(pid, command line) of running hvsim model processes (whose command line holds `marker`, e.g. a
    run directory root, when given)."""
    return [(p.pid, p.cmdline) for p in processes() if MODEL_MODULE in p.argv
            and (marker is None or marker in p.cmdline)]
