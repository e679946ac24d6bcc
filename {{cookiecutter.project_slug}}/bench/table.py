"""The benchmarks' markdown tables: absolute figures, each with its ratio to the reference."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from bench.workloads import Result

Figure = Callable[[Result], float | None]


def markdown(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "---:") -> str:
    """A markdown table: the first column left-aligned, the others as ``align`` says."""
    lines = [header, ["---", *[align] * (len(header) - 1)], *rows]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines)


def columns(results: Sequence[Result]) -> list[tuple[str, Figure, str]]:
    """(heading, figure, format) of every column that some result has a value for."""
    levels = sorted({level for result in results for level in result.idle_kib}, key=int)
    candidates: list[tuple[str, Figure, str]] = [
        ("echo round trips/s", lambda r: r.echo_rate, ",.0f"),
        ("echo p50 (ms)", lambda r: r.echo_p50, ".2f"),
        ("echo p99 (ms)", lambda r: r.echo_p99, ".2f"),
        ("echo server CPU/round trip (µs)", lambda r: r.echo_server_us, ".1f"),
        ("fan-out all reached p50 (ms)", lambda r: r.fanout_p50, ".2f"),
        ("fan-out all reached p99 (ms)", lambda r: r.fanout_p99, ".2f"),
        ("fan-out server CPU/round (ms)", lambda r: r.fanout_server_ms, ".1f"),
    ]
    candidates += [
        (f"idle KiB/conn at {int(level):,}", idle_figure(level), ".1f") for level in levels
    ]
    return [column for column in candidates if any(column[1](r) is not None for r in results)]


def idle_figure(level: str) -> Figure:
    return lambda result: result.idle_kib.get(level)


def cell(value: float | None, reference: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if not reference:
        return format(value, spec)
    return f"{value:{spec}} ({value / reference:.2f}x)"


def table(results: Sequence[Result]) -> str:
    """One row per server; ``(0.80x)`` is the ratio to the reference's figure in that column."""
    reference = next((result for result in results if result.reference), None)
    chosen = columns(results)
    header = ["server", *(heading for heading, _, _ in chosen)]
    rows = []
    for result in results:
        cells = [
            cell(figure(result), figure(reference) if reference else None, spec)
            for _, figure, spec in chosen
        ]
        rows.append([result.label, *cells])
    return markdown(header, rows)


def load_table(results: Sequence[Result]) -> str:
    """Who was busy: the server's and the load clients' share of a CPU during the workloads."""
    header = [
        "server",
        "echo: server CPU",
        "echo: CPU per load client",
        "echo: client CPU/round trip (µs)",
        "fan-out: client CPU/round",
    ]
    rows = []
    for result in results:
        shares = [result.echo_server_cpu, result.echo_client_cpu]
        per_trip = "-" if result.echo_client_us is None else f"{result.echo_client_us:.1f}"
        fanout = "-" if result.fanout_client_cpu is None else f"{result.fanout_client_cpu:.0%}"
        cells = ["-" if s is None else f"{s:.0%}" for s in shares]
        rows.append([result.label, *cells, per_trip, fanout])
    return markdown(header, rows)
