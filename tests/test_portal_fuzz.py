"""The Portal core under a hostile peer, with ASan+UBSan.

tests/c/portal_fuzz.c runs the guest's core (guest/portal/*.c: the code the
Linux init and the Track B kernel run, where an out-of-bounds access is a
kernel crash) and the host's fast path (portal_host.c) over one window in an
exactly sized heap buffer, and corrupts the window between steps: header
words, ring indices, slots, spans, short mappings. Every call must return a
count or a known error; no access may leave the window (sanitizer), and a
step of one side may only change the bytes that side owns (shadow diff)."""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from wslx.codegen import c_structs
from wslx.portal import layout
from wslx.spec import portal as spec

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 64 << 10   # small, so the shadow diff of every step stays cheap
SLOTS = 8           # small rings wrap often

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    d = tmp_path_factory.mktemp("portal-fuzz")
    (d / "portal_layout.h").write_text(c_structs.generate_header(spec.C_HEADER))
    exe = d / "portal_fuzz"
    r = subprocess.run(["gcc", "-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror",
                        "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
                        f"-I{d}", f"-I{ROOT / 'guest' / 'portal'}", f"-I{ROOT / 'host' / 'python' / 'wslx' / 'portal'}", str(ROOT / "tests" / "c" / "portal_fuzz.c"),
                        *map(str, sorted((ROOT / "guest" / "portal").glob("*.c"))),
                        str(ROOT / "host" / "python" / "wslx" / "portal" / "portal_host.c"), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the window as the host writes it (wslx.portal.region.Portal.initialise builds the same header)
    plan = layout.plan(WINDOW, ring_slots=SLOTS)
    hdr = spec.PortalHeader.build(dict(magic=spec.MAGIC, version=spec.VERSION, generation=0x1234_5678,
                                       portal_id=0xC0FFEE, **plan))
    image = d / "window.img"
    image.write_bytes(hdr + bytes(WINDOW - len(hdr)))
    return exe, image, plan


def run(fuzz, *args, script: str | None = None) -> dict:
    exe, image, _ = fuzz
    p = subprocess.run([str(exe), str(image), *args], input=script, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"portal_fuzz {' '.join(args)} ({p.returncode}):\n{p.stderr[-4000:]}\nscript:\n" + (
        (script or "")[-3000:])
    words = p.stdout.split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def test_a_clean_exchange_serves_everything(fuzz):
    """Without corruption every request is served and spans are touched: the driver works."""
    # s N-1 (op << 1 | span-from-live-allocation << 8) arg first-allocation: 8 requests fill a ring of 8
    echo, checksum, transform = (1 << 1) | 256, (2 << 1) | 256, (3 << 1) | 256
    script = "a 4096\na 100\n" + "".join(f"s 7 {op} 5 {i}\ng 1000\np 0 1000\n"
                                         for i, op in enumerate([echo, checksum, transform] * 3))
    r = run(fuzz, "script", script=script)
    assert r["served"] == 9 * 8 and r["spans"] == 2
    assert not any(k.startswith("err") for k in r), r


def test_the_driver_catches_an_out_of_window_access(fuzz):
    """The harness can fail: a host spin at offset 2**64-8 used to wrap the bounds check
    (off + 8 overflowed) and read 8 bytes before the window; it is FAULT now."""
    r = run(fuzz, "script", script="S 1 0 0\n")
    assert r.get("err14") == 1


@pytest.mark.parametrize("op,report", [("Z 3", "wrote window byte 0x3 outside what it owns"),
                                       ("Y 0", "heap-buffer-overflow")])
def test_the_harness_reports_stray_writes_and_reads(fuzz, op, report):
    """Self-tests: a write outside what a side owns, and a read past the window, fail the run."""
    exe, image, _ = fuzz
    p = subprocess.run([str(exe), str(image), "script"], input=op + "\n", capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and report in p.stderr, p.stderr[-2000:]


def test_header_corruption_detaches_the_guest_without_writes(fuzz):
    _, _, plan = fuzz
    r = run(fuzz, "script", script=f"h 0 0\ng 10\nG\ng 10\nk {plan['host_arena_offset']} 64 0 0\n")
    assert r.get("err74", 0) >= 2  # HEADER from the step and from the re-init


@pytest.mark.parametrize("seed", range(6))
def test_random_hostile_sessions(fuzz, seed):
    r = run(fuzz, "random", str(seed), "20000")
    assert r["ops"] > 5000
    # the sessions reach deep states, not just the first rejected header
    assert r["served"] > 0 and r["spans"] > 0
    assert sum(v for k, v in r.items() if k.startswith("err")) > 0


U64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 7, 8, 63, 64, 4095, 4096, WINDOW - 8, WINDOW,
                                                            2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 8, 2**64 - 1]),
                st.integers(0, WINDOW + 64))
OP = st.tuples(st.sampled_from(list("wqhcdsssgggGuupxaafkHASRPTm")), st.lists(U64, min_size=7, max_size=7))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OP, min_size=1, max_size=60))
def test_hypothesis_scripts(fuzz, ops):
    script = "".join(f"{c} {' '.join(map(str, xs))}\n" for c, xs in ops)
    run(fuzz, "script", script=script)
