"""The scale benchmark's figures per phase, its report in markdown, and what counts as failed."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.common import log_findings, loop_name, machine, percentile, project_metadata
from bench.redis_report import cell, redis_server_version
from bench.redis_scale_load import TEXT_BYTES
from bench.table import markdown

if TYPE_CHECKING:
    from bench.redis_scale import Layout

TARGET = 1.10  # process 0's CPU/s with the others' rooms doubled, over the steady phase's
LATE_MS = 20.0  # a client that sent later than this after a message's time was short of CPU
EXPLANATION = (
    "deliveries: a message reaching a member (the sender's own copy too); delivered/s: over the "
    "phase's seconds; latency: from the send to the arrival, every delivery. CPU: % of one CPU "
    "from the phase's start to its last delivery; µs/message: a server's CPU per delivery to "
    "its own members (redis-server's per message published, the clients' per delivery); "
    "frames: what each server received from Redis (/health frames_received), which must be its "
    "own rooms' messages. Ratios: the last phase over the one before it."
)


@dataclass
class PhaseResult:
    """What one phase measured; lists have an item per server process."""

    label: str
    seconds: float
    timed: bool  # a measurement (the warm-up is only checked)
    published: int
    expected: list[int]  # deliveries due to each process's members
    frames_expected: list[int]  # messages of the rooms each process has members in
    delivered: list[int] = field(default_factory=list)
    frames: list[tuple[int, int]] = field(default_factory=list)  # frames_received before, after
    latencies_us: list[int] = field(default_factory=list)
    wall: float = 0.0  # seconds from the phase's start to the clients' last answer
    cpu: dict[str, float] = field(default_factory=dict)  # label: CPU seconds during the phase
    duplicates: int = 0
    missing: int = 0
    lag_ms: float = 0.0  # the latest a client sent a message after its time
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every member had every message of its room once, in order."""
        return (
            self.delivered == self.expected
            and not self.duplicates
            and not self.missing
            and not self.problems
        )

    def share(self, label: str) -> float:
        """The CPU ``label`` used, in seconds a second."""
        return self.cpu[label] / self.wall if self.wall > 0 else 0.0

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies_us, q) / 1000 if self.latencies_us else None

    def failures(self) -> list[str]:
        failures = []
        if not self.complete:
            failures.append(
                f"{self.label}: {sum(self.delivered):,} deliveries of {sum(self.expected):,} "
                f"expected, {self.duplicates} duplicates, {self.missing} missing"
                + "".join(f"; {problem}" for problem in self.problems[:3])
            )
        for process, ((before, after), due) in enumerate(
            zip(self.frames, self.frames_expected, strict=True)
        ):
            if after - before != due:
                failures.append(
                    f"{self.label}: process {process} received {after - before:,} frames from "
                    f"Redis, the rooms it has members in sent {due:,}"
                )
        return failures


def header(layout: Layout, options: argparse.Namespace) -> str:
    project, dependencies = project_metadata()
    first = (layout.members + 1) // 2
    rooms = layout.rooms - len(layout.others(0))
    members = sum(layout.members_on(room, 0) for room in range(layout.rooms))
    total = layout.rooms * layout.members
    return "\n".join(
        [
            f"## Redis scale: {total:,} members in {layout.rooms} rooms over "
            f"{layout.processes} server processes\n",
            machine(),
            f"- project: {project} ({', '.join(dependencies) or 'dependencies unknown'})",
            f"- redis-server {redis_server_version()}; clients: {options.clients} processes "
            f"of picows {importlib.metadata.version('picows')} on {loop_name()}",
            f"- rooms: {layout.rooms} of {layout.members} members, room r's {first} + "
            f"{layout.members - first} on processes r mod {layout.processes} and "
            f"(r + 1) mod {layout.processes}: process 0 has {members} members in {rooms} rooms, "
            f"none in the other {layout.rooms - rooms}; single-worker servers on one Redis",
            f"- traffic: one sender per room, {options.rate:g} messages/s, "
            f"{TEXT_BYTES}-character texts; warm-up {options.warmup:g} s, then {options.seconds:g} "
            f"s steady, then {options.seconds:g} s with the rooms process 0 is not in at "
            f"{2 * options.rate:g} messages/s",
        ]
    )


def phase_table(results: Sequence[PhaseResult]) -> str:
    head = ["phase", "seconds", "published", "deliveries expected", "delivered", "delivered/s"]
    head += ["latency p50 (ms)", "p99 (ms)", "max (ms)"]
    rows = []
    for result in results:
        delivered = sum(result.delivered)
        latencies = [cell(result.latency(q)) for q in (50, 99, 100)]
        rows.append(
            [
                result.label,
                f"{result.seconds:g}",
                f"{result.published:,}",
                f"{sum(result.expected):,}",
                f"{delivered:,}",
                cell(delivered / result.seconds, 0),
                *latencies,
            ]
        )
    return markdown(head, rows)


def process_table(results: Sequence[PhaseResult], layout: Layout) -> str:
    """A row per server process, then redis-server and the clients; columns per timed phase."""
    head = ["process", "rooms", "members"]
    for result in results:
        head += [f"{result.label}: CPU", "µs/message", "frames"]
    if len(results) == 2:
        head += ["CPU ratio", "own deliveries ratio"]

    def per_message(result: PhaseResult, label: str, messages: int) -> str:
        return cell(result.cpu[label] / messages * 1e6, 1) if messages else "-"

    rows = []
    for process in range(layout.processes):
        label = f"process {process}"
        rooms = layout.rooms - len(layout.others(process))
        members = sum(layout.members_on(room, process) for room in range(layout.rooms))
        row = [label, str(rooms), str(members)]
        for result in results:
            before, after = result.frames[process]
            delivered = result.delivered[process]
            row += [f"{result.share(label):.1%}", per_message(result, label, delivered)]
            row.append(f"{after - before:,}")
        if len(results) == 2:
            base, doubled = results
            row.append(cell(ratio(doubled.share(label), base.share(label))))
            row.append(cell(ratio(doubled.delivered[process], base.delivered[process])))
        rows.append(row)
    for label in ("redis-server", "clients"):
        row = [label, "-", "-"]
        for result in results:
            messages = result.published if label == "redis-server" else sum(result.delivered)
            row += [f"{result.share(label):.1%}", per_message(result, label, messages), "-"]
        if len(results) == 2:
            row += [cell(ratio(results[1].share(label), results[0].share(label))), "-"]
        rows.append(row)
    return markdown(head, rows)


def ratio(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs else None


def proportionality(base: PhaseResult, doubled: PhaseResult, layout: Layout) -> list[str]:
    """The issue's check on process 0, the others for contrast, and process 0's frames."""
    own = base.share("process 0"), doubled.share("process 0")
    labels = [f"process {process}" for process in range(1, layout.processes)]
    others = sum(map(base.share, labels)), sum(map(doubled.share, labels))
    own_ratio = ratio(own[1], own[0])
    verdict = "met" if own_ratio is not None and own_ratio < TARGET else "NOT met"
    grown = ratio(sum(doubled.delivered[1:]), sum(base.delivered[1:]))
    lines = [
        f"process 0 CPU/s: base {own[0]:.3f}, others' rooms doubled {own[1]:.3f}, ratio "
        f"{cell(own_ratio)} (target < {TARGET:.2f}: {verdict})",
        f"the other processes' CPU/s together: base {others[0]:.3f}, others' rooms doubled "
        f"{others[1]:.3f}, ratio {cell(ratio(others[1], others[0]))} (the deliveries to their "
        f"members: {cell(grown)}x)",
    ]
    frames = [
        f"{result.label} {result.frames[0][0]:,} → {result.frames[0][1]:,} "
        f"(+{result.frames[0][1] - result.frames[0][0]:,}; its rooms sent "
        f"{result.frames_expected[0]:,})"
        for result in (base, doubled)
    ]
    lines.append(f"process 0 frames_received (/health): {'; '.join(frames)}")
    return lines


def report(
    results: Sequence[PhaseResult], layout: Layout, logs: Mapping[str, str]
) -> tuple[str, list[str]]:
    """Everything after the header, and the failures (empty when the run is sound)."""
    timed = [result for result in results if result.timed]
    parts = [phase_table(results)]
    if timed:
        parts += [process_table(timed, layout), EXPLANATION]
    if len(timed) == 2:
        parts.append("\n".join(proportionality(timed[0], timed[1], layout)))
    notes = [
        f"{result.label}: the clients sent up to {result.lag_ms:.0f} ms after a message's "
        "time: they were short of CPU"
        for result in results
        if result.lag_ms > LATE_MS
    ]
    for label, log in logs.items():
        if findings := log_findings(log):
            notes.append(f"{label} log looks troubled: {'; '.join(findings[:4])}")
    if notes:
        parts.append("notes:\n" + "\n".join(f"- {note}" for note in notes))
    failures = [failure for result in results for failure in result.failures()]
    if results and not results[-1].complete:
        failures.append(f"stopped after the {results[-1].label} phase")
    return "\n\n".join(parts), failures
