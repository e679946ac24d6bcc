"""The Redis benchmark's report: its header, its two tables and its notes, in markdown."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from collections.abc import Sequence

from bench.common import log_findings, loop_name, machine, project_metadata, ratio
from bench.redis_measure import (
    FLOOR,
    NO_HISTORY,
    QUIET_FLOOR,
    QUIET_REFERENCE,
    QUIET_TWO_SERVERS,
    REFERENCE,
    TWO_SERVERS,
    Measurement,
)
from bench.redis_messages import Load, project_payload_length
from bench.servers import RunningServer
from bench.table import markdown

EXPLANATION = (
    "messages/s: delivered, from the first send to the last arrival; latency: from a "
    "message's send to its arrival at the receiver, every message. Ratios: the project's "
    "figure over the reference's (below 1x: fewer messages/s; above 1x: slower); the floor "
    "is what a bare relay reaches on the same path, so over it is how close the project comes "
    "to the least such a server costs. Under "
    "load, latencies are mostly time spent queueing behind the other messages in flight; "
    "one message at a time shows what the path itself adds."
)


def cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def figures(measurement: Measurement) -> list[float | None]:
    return [
        measurement.rate,
        measurement.latency(50),
        measurement.latency(99),
        measurement.latency(100),
    ]


def table(measurements: Sequence[Measurement]) -> str:
    """One row per measurement (in :func:`bench.redis_measure.plans`' order), then the ratios."""
    header = ["path", "delivered", "messages/s", "latency p50 (ms)", "p99 (ms)", "max (ms)"]
    rows = []
    for measurement in measurements:
        numbers = figures(measurement)
        delivered = f"{measurement.received:,} of {measurement.expected:,}"
        cells = [cell(numbers[0], 0), *(cell(value) for value in numbers[1:])]
        rows.append([measurement.label, delivered, *cells])
    by_label = {measurement.label: figures(measurement) for measurement in measurements}
    busy, bare, floor, capacity = (
        by_label[label] for label in (TWO_SERVERS, NO_HISTORY, FLOOR, REFERENCE)
    )
    quiet, quiet_floor, hop = (
        by_label[label] for label in (QUIET_TWO_SERVERS, QUIET_FLOOR, QUIET_REFERENCE)
    )
    # Latencies under load are mostly queueing, at different rates: not compared.
    for label, numerator, denominator in (
        ("two servers / pipelined reference", busy, capacity),
        ("two servers / floor", busy, floor),
        ("history on / history off", busy, bare),
        ("floor / pipelined reference", floor, capacity),
    ):
        rows.append([label, "", ratio(numerator[0], denominator[0]), "-", "-", "-"])
    for label, numerator, denominator in (
        ("one at a time: project / reference", quiet, hop),
        ("one at a time: project / floor", quiet, quiet_floor),
        ("one at a time: floor / reference", quiet_floor, hop),
    ):
        rows.append(
            [label, "", *(ratio(a, b) for a, b in zip(numerator, denominator, strict=True))]
        )
    return markdown(header, rows, align="---")


def cpu_table(measurements: Sequence[Measurement]) -> str:
    labels = list(measurements[0].cpu)
    rows = [
        [measurement.label, *(f"{measurement.cpu[label]:.0f}%" for label in labels)]
        for measurement in measurements
    ]
    return markdown(["path", *labels], rows, align="---")


def redis_server_version() -> str:
    try:
        output = subprocess.run(
            ["redis-server", "--version"],  # noqa: S607 - whichever the tests would start
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return next((word[2:] for word in output.split() if word.startswith("v=")), "?")


def header(load: Load, quiet: int, text_bytes: int) -> str:
    """The heading and what the run is made of: machine, versions, load."""
    project, dependencies = project_metadata()
    return "\n".join(
        [
            f"## Redis pub/sub: {load.messages} messages between two server processes\n",
            machine(),
            f"- project: {project} ({', '.join(dependencies) or 'dependencies unknown'})",
            f"- redis-server {redis_server_version()}; clients on {loop_name()}: picows "
            f"{importlib.metadata.version('picows')} (no compression offered) to the project, "
            f"redis-py {importlib.metadata.version('redis')} (hiredis "
            f"{importlib.metadata.version('hiredis')}) to Redis for the reference and the "
            "floor (a bare relay on the same clients)",
            f"- run: {load.messages} messages from {load.senders} "
            f"sender{'' if load.senders == 1 else 's'}, at most {load.window} in flight per "
            f"sender; one at a time: {quiet} messages from 1 sender; {text_bytes}-character "
            f"text ({project_payload_length(text_bytes)} characters on the channel); two "
            "single-worker servers on one Redis, keeping the default room history "
            "(HISTORY_SIZE=100); each receiver in a process of its own",
        ]
    )


def notes_on(measurements: Sequence[Measurement], servers: Sequence[RunningServer]) -> list[str]:
    notes = []
    for measurement in measurements:
        if measurement.problem:
            notes.append(f"{measurement.label}: {measurement.problem}")
        if measurement.duplicates:
            notes.append(f"{measurement.label}: {measurement.duplicates} messages came twice")
        if measurement.out_of_order:
            count = measurement.out_of_order
            notes.append(f"{measurement.label}: {count} messages overtook an earlier one")
    for server in servers:
        findings = log_findings(server.log())
        if findings:
            notes.append(f"{server.label} log looks troubled: {'; '.join(findings[:4])}")
    return notes


def report(measurements: Sequence[Measurement], notes: Sequence[str]) -> str:
    """Everything after the header."""
    parts = [
        table(measurements),
        EXPLANATION,
        "CPU used during each measurement, in % of one CPU:",
        cpu_table(measurements),
        f"A process near 100% is what limits the figures; all of them share {os.cpu_count()} "
        "CPUs with whatever else runs on the machine.",
    ]
    if notes:
        parts.append("notes:\n" + "\n".join(f"- {note}" for note in notes))
    return "\n\n".join(parts)


def log_tail(server: RunningServer, lines: int = 15) -> str:
    tail = "\n".join(server.log().splitlines()[-lines:]) or "(empty)"
    return f"\n--- last lines of the {server.label} log ---\n{tail}"
