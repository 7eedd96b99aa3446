"""The conformance program's spec (wslx.spec.programs), its Python implementation
(what the reference agent runs), the Signal enum and the EXEC body builder."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from wslx.agentx import codec, programs
from wslx.agentx.errors import MalformedPayload
from wslx.spec import agentx as spec
from wslx.spec.programs import FAILED_STATUS, PROGRAM_NAME, USAGE_STATUS, ProgramStep


def test_signal_enum_matches_the_host_signal_numbers():
    """Signal is Linux x86-64's numbering; the host (Linux) agrees on every name it knows."""
    for s in spec.Signal:
        if hasattr(signal, s.name):
            assert int(getattr(signal, s.name)) == int(s), s.name
    assert spec.Signal.SIGSYS < spec.SIGNAL_MAX


def test_programs_capability_is_a_new_bit_and_documented():
    assert bin(int(spec.Capability.PROGRAMS)).count("1") == 1
    assert PROGRAM_NAME in spec.BY_TYPE[spec.MsgType.EXEC].doc
    from wslx.codegen import c_header, markdown
    header = c_header.generate()
    assert f'#define AGX_PROGRAM_NAME "{PROGRAM_NAME}"' in header
    assert "#define AGX_SIGTERM 0xF" in header
    for step in ProgramStep:
        assert f'{{"{step.word}", ' in header and f"#define AGX_STEP_{step.name} 0x{int(step):X}" in header
        assert f"| `{step.word}` |" in markdown.generate()


def test_raw_exec_body_matches_the_codec_and_can_be_malformed():
    body = dict(flags=int(spec.ExecFlag.STDIN_PIPE), argv=["a", "bé"], env=["K=V"], cwd="/tmp")
    raw = codec.raw_exec_body([b"a", "bé".encode()], env=[b"K=V"], cwd=b"/tmp", flags=body["flags"])
    assert raw == codec.encode_body(spec.MsgType.EXEC, body)
    assert codec.decode_body(spec.MsgType.EXEC, raw) == body
    with pytest.raises(MalformedPayload):
        codec.decode_body(spec.MsgType.EXEC, codec.raw_exec_body([b"\xff"]))


@pytest.mark.parametrize("argv,error", [
    (["nope"], "unknown step 'nope'"),
    (["out"], "out needs TEXT"),
    (["sleep", "-1"], "sleep: MS '-1'"),
    (["exit", "256"], "exit: CODE '256'"),
    (["zeros", "١"], "zeros: COUNT"),      # a non-ASCII digit is not a number here
    (["cwd"] * 65, "more than 64 steps"),
])
def test_parse_rejects_bad_usage(argv, error):
    with pytest.raises(programs.UsageError, match=error):
        programs.parse(argv)


def _run(*steps, input=b"", cwd=None, env=None):
    return subprocess.run([sys.executable, "-I", "-S", programs.SCRIPT, *map(str, steps)], input=input,
                          capture_output=True, cwd=cwd, env=env, timeout=20)


def test_python_program_runs_steps_in_order(tmp_path):
    r = _run("out", "a", "err", "E", "getenv", "WSLX_T", "getenv", "WSLX_NONE", "cwd", "cat", "zeros", 3,
             "write-file", tmp_path / "f", "data", "read-file", tmp_path / "f", "mounted", "/", "mounted", tmp_path,
             "exit", 7, "out", "never", input=b"IN", cwd=tmp_path, env={"WSLX_T": "t v"})
    assert r.returncode == 7
    assert r.stdout == b"at v\n\n" + str(tmp_path).encode() + b"\nIN\0\0\0datayes\nno\n"
    assert r.stderr == b"E"


def test_python_program_usage_and_failure_statuses(tmp_path):
    r = _run("out", "x", "bogus")
    assert (r.returncode, r.stdout) == (USAGE_STATUS, b"") and b"unknown step" in r.stderr
    r = _run("out", "x", "read-file", tmp_path / "missing", "out", "never")
    assert (r.returncode, r.stdout) == (FAILED_STATUS, b"x") and b"read-file" in r.stderr


def test_python_program_background_child_holds_stdout():
    r = _run("bg", 200, "late", "out", "early")
    assert (r.returncode, r.stdout) == (0, b"earlylate")
