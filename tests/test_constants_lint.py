"""Every known wire or image constant is written once, in its spec; everything
else imports it (Python) or includes the header generated from it (C, assembler).

A small grep-based lint over the source tree (code files only: prose in
Markdown may quote values). KNOWN is a table of (constant, its spec, the
regexes that find it written literally, a planted duplicate the lint must
catch): add a row when a constant moves into a spec. The second test plants
each row's duplicate in a scratch tree and shows the lint fires on it (and
leaves the spec itself alone). The last test keeps the spec modules pure: specs only,
no generators or runtime libraries imported."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_SUFFIXES = {".py", ".c", ".h", ".S", ".s", ".sh", ".ld"}
CODE_NAMES = {"SConscript", "SConstruct"}
NOT_SCANNED = ("build/", "images/", ".venv/")   # generated or fetched, never written by hand


@dataclass(frozen=True)
class Known:
    what: str                   # the constant, as a failure names it
    spec: str                   # repo path of its one definition
    patterns: tuple[str, ...]   # regexes that find it written literally in code
    planted: str                # a line duplicating it by hand: the lint must catch it
    allowed: tuple[str, ...] = ()  # other repo paths that may spell it (each with its reason)


AGENTX = "host/python/wslx/spec/agentx.py"
X86BOOT = "host/python/wslx/spec/x86boot.py"
PORTAL = "host/python/wslx/spec/portal.py"
HYPERV = "host/python/wslx/spec/hyperv.py"
TRACKB = "host/python/wslx/spec/trackb.py"
GEMINI = "host/python/wslx/spec/gemini.py"

KNOWN = [
    Known("AgentX frame header layout (struct formats, field offsets, CRC coverage)", AGENTX,
          (r"IBBHIII", r"\[(?:16:20|20:24)\]", r"crc32\([^()]*\[:20\]", r"agx_crc32\(\w+, 20\)",
           r"unpack_from\([\"']<I[\"'], \w+, 12\)"),
          'HEADER = struct.Struct("<IBBHIIII")'),
    Known("AgentX magic", AGENTX, (r"(?i)0x58544741", r"b[\"']AGTX[\"']"), "MAGIC = 0x58544741"),
    Known("AgentX virtio-serial port name", AGENTX, (r"[\"']org\.wslx\.agentx[\"']", r"name=org\.wslx\.agentx\b"),
          'AGENTX_PORT_NAME = "org.wslx.agentx"'),
    Known("XEN_ELFNOTE_PHYS32_ENTRY (PVH note type)", X86BOOT,
          (r"ELFNOTE_PHYS32_ENTRY\s*=?\s*18\b", r"\.long\s+(?:4\s*,\s*8\s*,\s*)?18\s*$", r"ntype\s*==\s*18\b"),
          "        .long 4, 8, 18"),
    Known("boot_params offsets", X86BOOT,
          (r"(?i)\b0x0*(?:228|2d0|1e8|0c8|238)\b", r"BOOT_PARAMS\s*\+\s*(?:0x)?\d"),
          "        mov     %eax, BOOT_PARAMS + 0x228"),
    Known("hvm_start_info offsets", X86BOOT, (r"\b(?:8|16|24|32|40|48)\(%ebx\)",),
          "        mov     32(%ebx), %eax          /* rsdp_paddr */"),
    Known("Portal host-library timeout code", PORTAL, (r"TIMEOUT\w*\s*=?\s*1000\b",),
          "#define PORTAL_HOST_TIMEOUT 1000"),
    Known("Portal sides (host, guest)", PORTAL,
          (r"#define\s+PORTAL_SIDE_\w+\s+\d", r"SIDE_HOST\s*,\s*SIDE_GUEST\s*=", r"SIDE_(?:HOST|GUEST)\s*=\s*\d"),
          "SIDE_HOST, SIDE_GUEST = 0, 1"),
    Known("isa-debug-exit port", TRACKB, (r"(?i)iobase=0xf4\b", r"(?i)\$0xf4\b", r"(?i)EXIT\w*\s+0xf4\b"),
          'ISA_DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]'),
    Known("Linux signal numbers (Signal)", AGENTX,
          (r"\bsigno\s*(?:[=!]=|=)\s*\d", r"\.signal\(\s*[\w.\[\]]+\s*,\s*\d+\s*[,)]", r"#\s*define\s+AGX_SIG\w+\s+(?:0x[0-9A-Fa-f]+|\d+)\s*(?:/[*/].*)?$"),
          "    client.signal(proc.pid, 15)"),
    Known("AgentX vsock / hv_sock control port", AGENTX,
          (r"(?:PORT\w*\s*=\s*|#\s*define\s+\w*PORT\w*\s+)50010\b", r"hvsock_(?:listen|connect)\(\s*50010\b"),
          "AGENTX_PORT = 50010"),
    Known("Hyper-V vendor and interface signatures (CPUID 0x40000000/1)", HYPERV,
          (r"(?i)0x31237648", r"[\"']Microsoft Hv[\"']\s*$|#\s*define\s+\w+\s+\"Microsoft Hv\""),
          '#define HV_INTERFACE_HV1 0x31237648u /* "Hv#1" */',
          # the fidelity test checks the spec against the facts sheet's literal value, on purpose
          allowed=("tests/test_hv_fidelity.py",)),
    Known("Hyper-V/VMBus struct layouts (SynIC header, timer payload, packet descriptor)", HYPERV,
          (r"[\"']<(?:IBBHQ|IIQQ|HHHHQ)[\"']",),
          'HEADER = struct.Struct("<IBBHQ")      # hv_message_header'),
    Known("Track B kernel load budget", TRACKB, (r"BUDGET\w*\s*=\s*144\s*\*\s*1024", r"\b147456\b"),
          "kernel = env.TrackBKernel('trackb-kernel.elf', sources, IMAGE_BUDGET=144 * 1024)"),
    Known("Gemini virtio-serial port names", GEMINI, (r"org\.wslx\.gemini\.(?:signal|upcall)",),
          'SIGNAL_NAME = "org.wslx.gemini.signal"'),
    Known("Gemini upcall port", GEMINI, (r"\b50012\b", r"(?i)\b0xc35c\b"), "UPCALL_PORT = 50012",
          ("tests/test_gemini_spec.py",)),  # checks the spec against the seed note's allocation
    Known("Gemini record magics", GEMINI, (r"(?i)0x494E4D47", r"(?i)0x43505547", r"b[\"'](?:GMNI|GUPC)[\"']"),
          "CALL_MAGIC = 0x494E4D47"),
]


@dataclass(frozen=True)
class Finding:
    path: str
    line_no: int
    what: str
    line: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_no}: {self.what} written literally: {self.line.strip()}"


def code_files(root: Path) -> list[str]:
    """Repo-relative paths of the code files git knows or would add (tracked and untracked)."""
    r = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True, text=True,
                       check=True, timeout=60)
    return sorted(p for p in r.stdout.splitlines()
                  if not p.startswith(NOT_SCANNED) and (Path(p).suffix in CODE_SUFFIXES or Path(p).name in CODE_NAMES))


def lint(root: Path, files: list[str], known: list[Known] = KNOWN, *, exempt: tuple[str, ...] = ()) -> list[Finding]:
    """Every line of `files` (relative to root) that spells a KNOWN constant outside its spec."""
    compiled = [(k, [re.compile(p) for p in k.patterns]) for k in known]
    out = []
    for rel in files:
        if rel in exempt:
            continue
        path = root / rel
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):  # binary, or deleted in the work tree
            continue
        for k, regexes in compiled:
            if rel == k.spec or rel in k.allowed:
                continue
            for no, line in enumerate(text.splitlines(), 1):
                if any(r.search(line) for r in regexes):
                    out.append(Finding(rel, no, k.what, line))
    return out


def test_no_known_constant_is_written_outside_its_spec():
    findings = lint(ROOT, code_files(ROOT), exempt=(str(Path(__file__).relative_to(ROOT)),))
    assert not findings, ("constants written by hand outside their spec (import the spec, or include the header "
                          "generated from it):\n" + "\n".join(map(str, findings)))


def test_every_row_names_an_existing_spec_and_valid_patterns():
    for k in KNOWN:
        assert (ROOT / k.spec).is_file(), f"{k.what}: spec {k.spec} does not exist"
        assert k.spec.startswith("host/python/wslx/spec/"), f"{k.what}: {k.spec} is not a spec module"
        for p in k.patterns:
            re.compile(p)


@pytest.mark.parametrize("known", KNOWN, ids=lambda k: k.what.split(" (")[0])
def test_lint_fires_on_a_planted_duplicate(tmp_path, known):
    """The row's duplicate, planted in a code file, is found (and only by its own row is it
    attributed); the same line in the spec itself is not a finding."""
    planted = "tests/planted_duplicate" + (".S" if known.planted.startswith(" ") else ".py")
    for rel, text in ((planted, f"# above\n{known.planted}\n# below\n"), (known.spec, known.planted + "\n")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    findings = lint(tmp_path, [planted, known.spec], [known])
    assert [(f.path, f.line_no) for f in findings] == [(planted, 2)], findings


def test_lint_fires_on_a_reverted_fix(tmp_path):
    """A real regression: the codec's hand-written header format and the shim's PVH note put
    back into copies of the real files are found, with their line numbers."""
    codec = (ROOT / "host/python/wslx/agentx/codec.py").read_text().splitlines()
    codec.insert(20, 'HEADER = struct.Struct("<IBBHIIII")')
    shim = (ROOT / "tests/c/trackb_shim64.S").read_text().splitlines()
    shim.append("        .long 4, 8, 18")
    for rel, lines in (("codec.py", codec), ("shim.S", shim)):
        (tmp_path / rel).write_text("\n".join(lines) + "\n")
    found = {(f.path, f.line_no, f.what.split(" (")[0]) for f in lint(tmp_path, ["codec.py", "shim.S"])}
    assert found == {("codec.py", 21, "AgentX frame header layout"),
                     ("shim.S", len(shim), "XEN_ELFNOTE_PHYS32_ENTRY")}, found


SPEC_DIR = ROOT / "host/python/wslx/spec"
SPEC_MAY_IMPORT = {"__future__", "dataclasses", "enum", "construct"}


def _imports(path: Path) -> set[str]:
    import ast
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_spec_modules_hold_specs_only():
    """A spec module imports only construct, the standard enum/dataclass helpers and other spec
    modules: no generator (wslx.codegen), no runtime library (numpy), nothing that runs."""
    for path in sorted(SPEC_DIR.glob("*.py")):
        bad = {m for m in _imports(path)
               if m.split(".")[0] not in SPEC_MAY_IMPORT and not (m.startswith(".") and not m.startswith(".."))
               and not m.startswith("wslx.spec")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
