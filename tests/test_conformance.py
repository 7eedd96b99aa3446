"""The conformance suite passes against the reference agent, and fails against
agents that break the protocol (so it can fail)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from wslx.agentx.reference_agent import CAPABILITIES, ReferenceAgent
from wslx.conformance import runner, targets
from wslx.spec.agentx import Capability, MsgType
from wslx.spec.programs import PROGRAM_NAME


def _run(agent_cls=None, patterns=None):
    t = targets.ReferenceTarget(timeout=3)
    if agent_cls:
        import wslx.conformance.targets as tmod
        orig = tmod.serve_in_thread
        tmod.serve_in_thread = lambda stream, **kw: orig(stream, **kw) if False else _serve(agent_cls, stream)
        try:
            with t:
                return runner.run_suite(t, patterns=patterns, timeout=3, log=lambda s: None)
        finally:
            tmod.serve_in_thread = orig
    with t:
        return runner.run_suite(t, patterns=patterns, timeout=3, log=lambda s: None)


def _serve(cls, stream):
    import threading
    a = cls(stream)
    th = threading.Thread(target=a.serve, daemon=True)
    th.start()
    return a, th


def test_reference_agent_passes(tmp_path):
    report = _run()
    assert report.ok, runner.format_table(report)
    names = {r.name for r in report.results if r.status == "pass"}
    assert {"malformed_garbage", "malformed_oversized", "stdin_is_relayed", "shutdown_ends_the_agent"} <= names
    skipped = {r.name: r.message for r in report.results if r.status == "skip"}
    assert "MOUNT" in skipped["mount_and_unmount"], "cases are selected by advertised capabilities"
    runner.write_junit(report, tmp_path / "c.xml")
    runner.write_markdown(report, tmp_path / "c.md")
    root = ET.parse(tmp_path / "c.xml").getroot()
    assert root.get("failures") == "0" and int(root.get("tests")) == len(report.results)
    assert "| malformed_garbage | pass |" in (tmp_path / "c.md").read_text()


class RecordingAgent(ReferenceAgent):
    """Records the argv of every EXEC it is asked to run."""
    argvs: list = []

    def _on_exec(self, f):
        RecordingAgent.argvs.append(list(f.body["argv"]))
        super()._on_exec(f)


def test_every_exec_of_the_suite_is_the_conformance_program():
    """No case needs a shell or any program of the guest's: every EXEC runs wslx-conform, except the
    deliberately missing program and the empty argv0 (ENOENT)."""
    RecordingAgent.argvs = []
    report = _run(RecordingAgent)
    assert report.ok, runner.format_table(report)
    argv0s = {a[0] for a in RecordingAgent.argvs if a}
    assert argv0s == {PROGRAM_NAME, "/nonexistent/wslx-conformance", ""}, argv0s
    assert len(RecordingAgent.argvs) > 20


class WithoutPrograms(ReferenceAgent):
    """An agent from before Capability.PROGRAMS: it does not advertise the conformance program."""
    def __init__(self, stream, **kw):
        super().__init__(stream, capabilities=CAPABILITIES & ~Capability.PROGRAMS, **kw)


def test_an_agent_without_programs_skips_the_process_cases_and_still_passes():
    report = _run(WithoutPrograms)
    assert report.ok, runner.format_table(report)
    skipped = {r.name: r.message for r in report.results if r.status == "skip"}
    assert "PROGRAMS" in skipped["exec_reports_exit_status"] and "PROGRAMS" in skipped["stdin_is_relayed"]
    assert "exec_missing_program_gives_errno" not in skipped


class SilentOnGarbage(ReferenceAgent):
    """Swallows malformed frames without an ERROR reply."""
    def _error(self, code, message, request_id=0, request_type=0):
        if request_id == 0:
            return
        super()._error(code, message, request_id, request_type)


class ExitBeforeEof(ReferenceAgent):
    """Reports EXIT as soon as the process is reaped, before its streams' EOF."""
    def _maybe_exit(self, c):
        if c.status is not None and not getattr(c, "sent", False):
            c.sent = True
            how, code = c.status
            self._emit(MsgType.EXIT, dict(pid=c.pid, how=how, code=code))
            self.children.pop(c.pid, None)


class WrongExitCode(ReferenceAgent):
    def _emit(self, msg_type, body, request_id=0, reply=False):
        if msg_type == MsgType.EXIT:
            body = dict(body, code=body["code"] ^ 1)
        super()._emit(msg_type, body, request_id, reply)


@pytest.mark.parametrize("broken,case", [
    (SilentOnGarbage, "malformed_garbage"),
    (ExitBeforeEof, "exec_reports_exit_status"),
    (WrongExitCode, "exec_reports_exit_status"),
])
def test_suite_fails_against_broken_agents(broken, case):
    report = _run(broken, patterns=[case])
    bad = [r for r in report.results if r.name == case]
    assert bad and bad[0].status in ("fail", "error"), runner.format_table(report)
    assert not report.ok


def test_c_init_passes_the_same_suite_on_the_host(repo_root):
    """The same cases, unchanged, against guest/init's binary in its host test mode."""
    import subprocess
    import sys
    subprocess.run([sys.executable, "-m", "SCons", "-Q", "init"], cwd=repo_root, check=True, capture_output=True)
    from helpers.init_sandbox import skip_without_sandbox
    skip_without_sandbox(repo_root / "images" / "wslx-init")
    with targets.TARGETS["init-host"](timeout=5) as t:
        report = runner.run_suite(t, timeout=5, log=lambda s: None)
    assert report.ok, runner.format_table(report)
    assert report.agent.startswith("wslx-init")
