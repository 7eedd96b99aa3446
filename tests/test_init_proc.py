"""guest/init/proc.c alone, behind struct proc_host (proc.h): a host-side unit test in C
(tests/c/init_proc_test.c) with a fake agent that records every frame, built with ASan and
UBSan. It links proc.c, util.c and guest/agentx only: nothing of agent.c."""
from __future__ import annotations

import pytest

from helpers.c_unit import build_sanitized, run_passes

SOURCES = ["tests/c/init_proc_test.c", "guest/init/proc.c", "guest/init/util.c", "guest/agentx/agentx_rx.c", "guest/agentx/agentx_out.c",
           "guest/agentx/agentx_program.c"]


@pytest.fixture(scope="module")
def proc_test(generated, repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("init-proc") / "init_proc_test"
    return build_sanitized(repo_root, generated, SOURCES, ["guest/init"], out)


def test_proc_c_runs_alone_behind_its_host_interface(proc_test):
    run_passes(proc_test, ("exit_status_and_output", "missing_program", "stdin_is_acknowledged", "signal",
                           "background_child_bounded_by_grace"))
