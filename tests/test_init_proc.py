"""guest/init/proc.c alone, behind struct proc_host (proc.h): a host-side unit test in C
(tests/c/init_proc_test.c) with a fake agent that records every frame, built with ASan and
UBSan. It links proc.c, util.c and guest/agentx only: nothing of agent.c."""
from __future__ import annotations

import shutil
import subprocess

import pytest

SOURCES = ["tests/c/init_proc_test.c", "guest/init/proc.c", "guest/init/util.c", "guest/agentx/agentx_rx.c", "guest/agentx/agentx_out.c",
           "guest/agentx/agentx_program.c"]


@pytest.fixture(scope="module")
def proc_test(generated, repo_root, tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (tools/setup.sh installs it)")
    out = tmp_path_factory.mktemp("init-proc") / "init_proc_test"
    subprocess.run(["gcc", "-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{generated}", f"-I{repo_root / 'guest/init'}",
                    *[str(repo_root / s) for s in SOURCES], "-o", str(out)], check=True)
    return out


def test_proc_c_runs_alone_behind_its_host_interface(proc_test):
    r = subprocess.run([str(proc_test)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("exit_status_and_output", "missing_program", "stdin_is_acknowledged", "signal",
                 "background_child_bounded_by_grace"):
        assert f"ok {name}" in r.stdout
    assert "runtime error" not in r.stderr, r.stderr
