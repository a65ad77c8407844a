"""`chainkit serve` and `chainkit local serve` under load from Locust (headless).

Starts each server as its own process, takes a baseline (resident memory of the
process and its children, established connections on its port, requests in
flight), runs Locust's users from benchmarks/locustfile.py (mixed traffic, 5% of
streams dropped by the client), samples the peak while it runs, then waits for the
server to settle and samples again. Locust runs from its own virtualenv (it pulls
in gevent and Flask, which the project does not need)::

    python -m venv /tmp/locust-venv && /tmp/locust-venv/bin/pip install 'locust>=2.40,<3'
    .venv/bin/python benchmarks/load.py --locust /tmp/locust-venv/bin/locust \\
        --users 30 --duration 180

Prints a Markdown table per target (the figures in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent


@dataclass
class Sample:
    rss_mb: float
    connections: int
    in_flight: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(target: str, port: int) -> subprocess.Popen[bytes]:
    if target == "chainkit":
        args = ["serve", "--port", str(port), "--model", "local", "--max-streams", "512"]
    else:
        args = ["local", "serve", "--port", str(port)]
    env = dict(os.environ)
    env.pop("CHAINKIT_API_TOKEN", None)
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "chainkit", "--quiet", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server at {url} exited ({process.returncode})")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not start")


def _in_flight(target: str, url: str) -> int:
    if target == "chainkit":
        return int(httpx.get(f"{url}/health", timeout=10).json()["streams_in_flight"])
    return int(httpx.get(f"{url}/stats", timeout=10).json()["in_flight"])


def _sample(target: str, url: str, process: psutil.Process, port: int) -> Sample:
    procs = [process, *process.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs if p.is_running())
    established = sum(
        1
        for p in procs
        for c in p.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    )
    # the sampling request itself holds one connection while it is answered
    return Sample(rss / 2**20, established, _in_flight(target, url))


def _warm(target: str, url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(20):
            if target == "chainkit":
                client.post("/chains/haiku/invoke", json={"input": {"topic": "warm"}})
                client.post("/chains/haiku/batch", json={"inputs": [{"topic": "w"}] * 3})
            else:
                body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                client.post("/v1/chat/completions", json=body)


def _disconnected(target: str, url: str) -> int | None:
    """Streams the service counted as left by their client (chainkit serve's metrics)."""
    if target != "chainkit":
        return None
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("chainkit_streams_total{") and 'outcome="disconnected"' in line
        )
    )


def _locust_totals(prefix: Path) -> dict[str, Any]:
    with (prefix.parent / f"{prefix.name}_stats.csv").open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    per_name = {
        name: f"{float(row['Requests/s']):.1f}/s p50 {row['50%']} ms p95 {row['95%']} ms"
        for name, row in rows.items()
        if name != "Aggregated"
    }
    failures_file = prefix.parent / f"{prefix.name}_failures.csv"
    with failures_file.open() as handle:
        failures = [
            f"{row['Name']}: {row['Error'][:120]} x{row['Occurrences']}"
            for row in csv.DictReader(handle)
        ]
    return {
        "failure_kinds": failures,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50": total["50%"],
        "p95": total["95%"],
        "per_name": per_name,
    }


@dataclass
class Round:
    peak: Sample
    after: Sample
    settled: float
    totals: dict[str, Any]


def _load_round(
    target: str, locust: str, *, users: int, duration: int, settle: int, server: Any
) -> Round:
    url, proc, port, base = server
    with tempfile.TemporaryDirectory() as folder:
        prefix = Path(folder) / "stats"
        command = [locust, "-f", str(HERE / "locustfile.py"), "--headless", "--only-summary"]
        command += ["-u", str(users), "-r", str(max(1, users // 5)), "-t", f"{duration}s"]
        command += ["--host", url, "--csv", str(prefix)]
        runner = subprocess.Popen(  # noqa: S603 - the Locust the caller named
            command,
            env=dict(os.environ, TARGET=target),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = base
        while runner.poll() is None:
            time.sleep(2)
            now = _sample(target, url, proc, port)
            peak = Sample(
                max(peak.rss_mb, now.rss_mb),
                max(peak.connections, now.connections),
                max(peak.in_flight, now.in_flight),
            )
        totals = _locust_totals(prefix)
    started = time.monotonic()
    after = _sample(target, url, proc, port)
    while time.monotonic() - started < settle and (
        after.connections > base.connections or after.in_flight > base.in_flight
    ):
        time.sleep(1)
        after = _sample(target, url, proc, port)
    return Round(peak, after, time.monotonic() - started, totals)


def run_target(
    target: str, locust: str, *, users: int, duration: int, settle: int, rounds: int
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(target, port)
    try:
        _wait_ready(url, server)
        proc = psutil.Process(server.pid)
        _warm(target, url)
        time.sleep(2)
        base = _sample(target, url, proc, port)
        done = [
            _load_round(
                target,
                locust,
                users=users,
                duration=duration,
                settle=settle,
                server=(url, proc, port, base),
            )
            for _ in range(rounds)
        ]
        cpu = proc.cpu_times()
        dropped = _disconnected(target, url)
    finally:
        server.terminate()
        server.wait(15)
    print(f"\n### {target}: {users} users, {rounds} x {duration} s\n")
    head = ["measure", "baseline"]
    for i, r in enumerate(done, start=1):
        head += [f"peak, round {i}", f"after round {i} (settled in {r.settled:.0f} s)"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    rows: list[list[Any]] = [
        ["resident memory (MB)", f"{base.rss_mb:.0f}"],
        ["established connections", base.connections],
        ["in flight", base.in_flight],
    ]
    for r in done:
        rows[0] += [f"{r.peak.rss_mb:.0f}", f"{r.after.rss_mb:.0f}"]
        rows[1] += [r.peak.connections, r.after.connections]
        rows[2] += [r.peak.in_flight, r.after.in_flight]
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print()
    for i, r in enumerate(done, start=1):
        t = r.totals
        print(
            f"- round {i}: {t['requests']} requests, {t['failures']} failures, "
            f"{t['rps']:.1f} req/s, p50 {t['p50']} ms, p95 {t['p95']} ms; "
            + ", ".join(f"{name} {line}" for name, line in sorted(t["per_name"].items()))
        )
        for kind in t["failure_kinds"][:5]:
            print(f"  - failed: {kind}")
    print(f"- server CPU {cpu.user + cpu.system:.0f} s in all")
    if dropped is not None:
        print(f"- streams the server counted as dropped by their client: {dropped}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locust", default="locust", help="the locust executable")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--duration", type=int, default=180, help="seconds of load per target")
    parser.add_argument("--settle", type=int, default=30, help="seconds allowed to settle")
    parser.add_argument("--target", choices=["chainkit", "local", "both"], default="both")
    parser.add_argument(
        "--rounds", type=int, default=2, help="load rounds on one server (leaks show as growth)"
    )
    args = parser.parse_args()
    targets = ["chainkit", "local"] if args.target == "both" else [args.target]
    for target in targets:
        run_target(
            target,
            args.locust,
            users=args.users,
            duration=args.duration,
            settle=args.settle,
            rounds=args.rounds,
        )


if __name__ == "__main__":
    main()
