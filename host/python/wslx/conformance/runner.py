"""Run the conformance suite against a target; print a table; write JUnit XML
and Markdown reports."""
from __future__ import annotations

import dataclasses
import fnmatch
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

from ..agentx.errors import AgentXError, ConnectionLost
from .suite import CASES, Case, ConformanceFailure, Context


@dataclasses.dataclass
class Result:
    name: str
    status: str          # pass, fail, error, skip
    seconds: float
    message: str = ""
    doc: str = ""


@dataclasses.dataclass
class Report:
    target: str
    agent: str
    capabilities: list[str]
    results: list[Result]

    @property
    def ok(self) -> bool:
        return all(r.status in ("pass", "skip") for r in self.results) and any(r.status == "pass" for r in self.results)

    def counts(self) -> dict:
        out = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
        for r in self.results:
            out[r.status] += 1
        return out


def _skip_reason(c: Case, ctx: Context, target) -> str | None:
    caps = ctx.hello.capabilities
    missing = [cap.name for cap in type(c.requires) if c.requires & cap and not caps & cap]
    if missing:
        return f"agent does not advertise {', '.join(missing)}"
    present = [cap.name for cap in type(c.requires_absent) if c.requires_absent & cap and caps & cap]
    if present:
        return f"agent advertises {', '.join(present)}"
    if c.needs == "version2":
        if ctx.hello.version_max < 2:
            return f"agent speaks only version {ctx.hello.version_max}"
    elif c.needs and not getattr(target, f"supports_{c.needs}", False):
        return f"target {target.name} cannot {c.needs}"
    return None


def select_cases(patterns: list[str] | None) -> list[Case]:
    cases = [c for c in CASES if not c.last] + [c for c in CASES if c.last]
    if patterns:
        cases = [c for c in cases if any(fnmatch.fnmatch(c.name, p) or p in c.name for p in patterns)]
    return cases


def run_suite(target, *, patterns=None, timeout: float = 10.0, log=print) -> Report:
    """target: an opened target (see wslx.conformance.targets) with .client."""
    ctx = Context(client=target.client, target=target, timeout=timeout)
    ctx.client.wait_hello(timeout=timeout)
    results: list[Result] = []
    broken: str | None = None
    for c in select_cases(patterns):
        t0 = time.monotonic()
        reason = _skip_reason(c, ctx, target) if not broken else f"connection lost earlier: {broken}"
        if reason:
            results.append(Result(c.name, "skip", 0.0, reason, c.doc))
            continue
        try:
            c.func(ctx)
            results.append(Result(c.name, "pass", time.monotonic() - t0, "", c.doc))
        except ConformanceFailure as e:
            results.append(Result(c.name, "fail", time.monotonic() - t0, str(e), c.doc))
        except ConnectionLost as e:
            broken = str(e)
            results.append(Result(c.name, "error", time.monotonic() - t0, f"{type(e).__name__}: {e}", c.doc))
        except (AgentXError, OSError) as e:
            results.append(Result(c.name, "error", time.monotonic() - t0, f"{type(e).__name__}: {e}", c.doc))
        except Exception as e:  # a bug in the case itself: report it, keep going
            results.append(Result(c.name, "error", time.monotonic() - t0,
                                  f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}", c.doc))
        r = results[-1]
        log(f"  {r.status.upper():5} {r.name} ({r.seconds * 1000:.0f} ms){': ' + r.message.splitlines()[0] if r.message else ''}")
        target.client = ctx.client  # a case may have reconnected
    h = ctx.hello
    return Report(target.name, f"{h.name} ({h.kind_name}, {h.os_release})", h.capability_names, results)


def format_table(report: Report) -> str:
    w = max(len(r.name) for r in report.results)
    lines = [f"AgentX conformance: target {report.target}, agent {report.agent}",
             f"capabilities: {', '.join(report.capabilities)}", "",
             f"{'case':<{w}}  result  time     note", f"{'-' * w}  ------  -------  ----"]
    for r in report.results:
        note = r.message.splitlines()[0] if r.message else ""
        lines.append(f"{r.name:<{w}}  {r.status.upper():<6}  {r.seconds * 1000:5.0f}ms  {note}")
    c = report.counts()
    lines += ["", f"{c['pass']} passed, {c['fail']} failed, {c['error']} errors, {c['skip']} skipped: "
                  f"{'PASS' if report.ok else 'FAIL'}"]
    return "\n".join(lines)


def write_junit(report: Report, path: Path) -> None:
    c = report.counts()
    suite = ET.Element("testsuite", name=f"agentx-conformance-{report.target}", tests=str(len(report.results)),
                       failures=str(c["fail"]), errors=str(c["error"]), skipped=str(c["skip"]),
                       time=f"{sum(r.seconds for r in report.results):.3f}")
    for r in report.results:
        tc = ET.SubElement(suite, "testcase", classname=f"conformance.{report.target}", name=r.name,
                           time=f"{r.seconds:.3f}")
        if r.status == "fail":
            ET.SubElement(tc, "failure", message=r.message.splitlines()[0] if r.message else "").text = r.message
        elif r.status == "error":
            ET.SubElement(tc, "error", message=r.message.splitlines()[0] if r.message else "").text = r.message
        elif r.status == "skip":
            ET.SubElement(tc, "skipped", message=r.message)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def write_markdown(report: Report, path: Path) -> None:
    c = report.counts()
    lines = [f"# AgentX conformance: {report.target}", "", f"Agent: {report.agent}  ",
             f"Capabilities: {', '.join(report.capabilities)}  ",
             f"Result: **{'PASS' if report.ok else 'FAIL'}** ({c['pass']} passed, {c['fail']} failed, "
             f"{c['error']} errors, {c['skip']} skipped)", "", "| case | result | ms | what it checks | note |",
             "|---|---|---|---|---|"]
    for r in report.results:
        note = (r.message.splitlines()[0] if r.message else "").replace("|", "\\|")
        lines.append(f"| {r.name} | {r.status} | {r.seconds * 1000:.0f} | {r.doc.replace('|', '/')} | {note} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
