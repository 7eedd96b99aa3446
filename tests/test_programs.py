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
    assert f"#define AGX_SIGTERM 0x{int(spec.Signal.SIGTERM):X}" in header
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


def test_c_and_python_parsers_agree(generated, repo_root, tmp_path):
    """guest/agentx/agentx_program.c (both guest agents) accepts exactly the argv the Python
    parser accepts, with the same steps and numbers."""
    import random
    import shutil
    from wslx.spec.programs import NUMBER_MAX, STEPS
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (tools/setup.sh installs it)")
    exe = tmp_path / "parse"
    subprocess.run(["gcc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{generated}", f"-I{repo_root / 'guest/agentx'}",
                    str(repo_root / "tests/c/program_parse_driver.c"), str(repo_root / "guest/agentx/agentx_program.c"),
                    "-o", str(exe)], check=True)
    rng = random.Random(20261207)
    words = [s.step.word for s in STEPS] + ["nope", "OUT", "out "]
    numbers = ["0", "1", "255", "256", "3600000", "3600001", "4294967296", "4294967297", "-1", "+1", "1.5",
               "007", "99999999999999999999999", "١"]
    cases = []
    for _ in range(3000):
        argv = []
        for _ in range(rng.randrange(0, 6)):
            argv.append(rng.choice(words))
            argv += [rng.choice(numbers + ["text", "a b"]) for _ in range(rng.randrange(0, 3))]
        cases.append(argv)
    cases.append(["cwd"] * 64)
    cases.append(["cwd"] * 65)
    kept = [a for a in cases if all(a)]  # an empty argument cannot cross the driver's line format
    lines = "".join("\t".join(a) + "\n" for a in kept)
    got = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(got) == len(kept)
    accepted = 0
    for argv, out in zip(kept, got):
        try:
            steps = programs.parse(argv)
        except programs.UsageError:
            assert out == "usage", argv
            continue
        accepted += 1
        numeric = lambda step: STEPS[step].args[:1] and STEPS[step].args[0] in NUMBER_MAX
        want = "ok" + "".join(f" {int(step)}:{args[0] if numeric(step) else 0}" for step, args in steps)
        assert out == want, (argv, out, want)
    assert accepted > 100
