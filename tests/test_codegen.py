"""Generated files: regeneration matches what SCons built, the committed protocol
reference does not drift from the spec, and SCons rebuilds on generator change
but does nothing on a second run."""
from __future__ import annotations

import subprocess
import sys

from wslx.codegen import c_header, markdown


def test_committed_protocol_reference_matches_the_spec(repo_root):
    committed = (repo_root / "docs" / "agentx-protocol.md").read_text()
    assert committed == markdown.generate(), (
        "docs/agentx-protocol.md drifted from the spec: regenerate with "
        "`.venv/bin/python -m wslx.codegen markdown docs/agentx-protocol.md`")


def test_regeneration_matches_the_build(generated):
    assert (generated / "agentx_wire.h").read_text() == c_header.generate()
    assert (generated / "agentx_examples.h").read_text() == c_header.generate_examples()
    assert (generated / "agentx-protocol.md").read_text() == markdown.generate()


def test_second_scons_run_does_nothing(generated, repo_root):
    r = subprocess.run([sys.executable, "-m", "SCons", "gen"], cwd=repo_root, capture_output=True, text=True,
                       check=True)
    assert "[gen]" not in r.stdout
    assert "up to date" in r.stdout
    q = subprocess.run([sys.executable, "-m", "SCons", "-q", "gen"], cwd=repo_root, capture_output=True)
    assert q.returncode == 0, "scons -q says the generated files are out of date right after a build"


def test_generator_sources_are_dependencies(generated, repo_root):
    """Editing the generator marks the outputs out of date (emitter dependency)."""
    r = subprocess.run([sys.executable, "-m", "SCons", "--tree=prune", "-n", "build/gen/agentx_wire.h"],
                       cwd=repo_root, capture_output=True, text=True, check=True)
    assert "host/python/wslx/codegen/c_header.py" in r.stdout
    assert "host/python/wslx/spec/agentx.py" in r.stdout
