"""`chainkit serve` and `chainkit local serve` under load from Locust (headless).

Starts each server as its own process, warms it (each endpoint of the mix, 20 times),
takes a baseline (resident memory of the process and its children, established
connections on its port, requests in flight; for `chainkit serve` also its embedded
local model's connections and calls in flight), then runs Locust's users from
benchmarks/locustfile.py (mixed traffic, 5% of streams dropped by the client) for
``--rounds`` rounds of ``--duration`` seconds on the same server, sampling the peak
while each runs and settling ``--settle`` seconds after it.
The first round's settled figures are the post-warm-up baseline the later rounds are
compared with. Locust runs from its own virtualenv (it pulls in gevent and Flask,
which the project does not need)::

    python -m venv /tmp/locust-venv && /tmp/locust-venv/bin/pip install 'locust>=2.40,<3'
    .venv/bin/python benchmarks/load.py --locust /tmp/locust-venv/bin/locust \\
        --users 30 --duration 300 --rounds 2

Prints a Markdown table per target (the figures in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
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
    connections: int  # established on the server's port
    in_flight: int  # streams (chainkit serve) or requests (local model) in flight
    model_connections: int = 0  # chainkit serve: established on its local model's port
    model_in_flight: int = 0  # chainkit serve: its local model's requests in flight

    def counts(self) -> tuple[int, int, int, int]:
        return (self.connections, self.in_flight, self.model_connections, self.model_in_flight)


def _peak(a: Sample, b: Sample) -> Sample:
    return Sample(*(max(x, y) for x, y in zip(vars(a).values(), vars(b).values(), strict=True)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(target: str, port: int) -> subprocess.Popen[bytes]:
    if target == "chainkit":
        args = ["serve", "--port", str(port), "--model", "local", "--max-streams", "512"]
    else:
        # streams take ~0.25 s (48 tokens), so a client that leaves cuts one mid-way
        args = ["local", "serve", "--port", str(port), "--token-delay", "0.005"]
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


def _model_port(process: psutil.Process, port: int) -> int | None:
    """The port of the local model `chainkit serve --model local` runs in its process."""
    listening = [
        c.laddr.port
        for c in process.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port != port
    ]
    return listening[0] if listening else None


def _stats(url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{url}/stats", timeout=10).json()
    return data


def _sample(target: str, url: str, process: psutil.Process, port: int) -> Sample:
    procs = [process, *process.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs if p.is_running())
    sockets = [c for p in procs for c in p.net_connections(kind="tcp")]

    def established(on: int | None) -> int:
        return sum(
            1
            for c in sockets
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == on
        )

    if target == "local":
        return Sample(rss / 2**20, established(port), int(_stats(url)["in_flight"]))
    in_flight = int(httpx.get(f"{url}/health", timeout=10).json()["streams_in_flight"])
    model = _model_port(process, port)
    model_in_flight = int(_stats(f"http://127.0.0.1:{model}")["in_flight"]) if model else 0
    return Sample(rss / 2**20, established(port), in_flight, established(model), model_in_flight)


def _warm(target: str, url: str) -> None:
    """Call every endpoint of the mix 20 times, one at a time (first-use imports, caches)."""
    if target == "chainkit":
        one = {"input": {"topic": "warm"}}
        calls = [
            ("/chains/haiku/invoke", one),
            ("/chains/haiku/batch", {"inputs": [{"topic": "w"}] * 3}),
            ("/chains/haiku/stream", one),
            ("/chains/haiku/stream_events", {**one, "include_types": ["chat_model"]}),
        ]
    else:
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        calls = [
            ("/v1/chat/completions", chat),
            ("/v1/chat/completions", {**chat, "stream": True}),
            ("/v1/responses", {"model": "m", "input": "hi", "stream": True}),
            ("/v1/embeddings", {"model": "m", "input": ["a", "b"]}),
        ]
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(20):
            for path, body in calls:
                client.post(path, json=body).raise_for_status()


def _server_drops(target: str, url: str) -> int:
    """Streams the server counted as left by their client."""
    if target == "local":
        return int(_stats(url)["streams"]["cut_client"])
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
    settled: float | None  # seconds until connections and in-flight were back, if they were
    totals: dict[str, Any]
    drops: int  # streams the clients dropped
    server_drops: int  # streams the server counted as dropped (this round)
    load: tuple[float, float, float]  # the machine's load average as the round ended


def _load_round(
    target: str, locust: str, *, users: int, duration: int, settle: int, server: Any
) -> Round:
    url, proc, port, base = server
    drops_before = _server_drops(target, url)
    with tempfile.TemporaryDirectory() as folder:
        prefix = Path(folder) / "stats"
        drops_file = Path(folder) / "drops.json"
        command = [locust, "-f", str(HERE / "locustfile.py"), "--headless", "--only-summary"]
        command += ["-u", str(users), "-r", str(max(1, users // 5)), "-t", f"{duration}s"]
        command += ["--host", url, "--csv", str(prefix)]
        runner = subprocess.Popen(  # noqa: S603 - the Locust the caller named
            command,
            env=dict(os.environ, TARGET=target, DROPS_FILE=str(drops_file)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = base
        while runner.poll() is None:
            time.sleep(2)
            peak = _peak(peak, _sample(target, url, proc, port))
        totals = _locust_totals(prefix)
        drops = sum(json.loads(drops_file.read_text()).values()) if drops_file.exists() else 0
    load = os.getloadavg()
    started = time.monotonic()
    settled = None
    after = _sample(target, url, proc, port)
    while True:  # the counts should be back at once; memory is read at the window's end
        if settled is None and all(
            now <= then for now, then in zip(after.counts(), base.counts(), strict=True)
        ):
            settled = time.monotonic() - started
        if time.monotonic() - started >= settle:
            break
        time.sleep(1)
        after = _sample(target, url, proc, port)
    server_drops = _server_drops(target, url) - drops_before
    return Round(peak, after, settled, totals, drops, server_drops, load)


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
    finally:
        server.terminate()
        server.wait(15)
    _report(target, users=users, duration=duration, base=base, done=done, cpu=cpu)


def _report(
    target: str, *, users: int, duration: int, base: Sample, done: list[Round], cpu: Any
) -> None:
    print(f"\n### {target}: {users} users, {len(done)} x {duration} s\n")
    head = ["measure", "baseline (warmed)"]
    for i in range(1, len(done) + 1):
        head += [f"peak, round {i}", f"after round {i}"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    rows: list[tuple[str, Any]] = [
        ("resident memory (MB)", lambda s: f"{s.rss_mb:.0f}"),
        ("established connections", lambda s: s.connections),
        (
            "streams in flight" if target == "chainkit" else "requests in flight",
            lambda s: s.in_flight,
        ),
    ]
    if target == "chainkit":
        rows += [
            ("its local model: connections", lambda s: s.model_connections),
            ("its local model: requests in flight", lambda s: s.model_in_flight),
        ]
    for label, cell in rows:
        line = [label, cell(base)]
        for r in done:
            line += [cell(r.peak), cell(r.after)]
        print("| " + " | ".join(str(c) for c in line) + " |")
    print()
    for i, r in enumerate(done, start=1):
        t = r.totals
        settled = "never" if r.settled is None else f"{r.settled:.0f} s"
        print(
            f"- round {i}: {t['requests']} requests, {t['failures']} failures, "
            f"{t['rps']:.1f} req/s, p50 {t['p50']} ms, p95 {t['p95']} ms; "
            f"{r.drops} streams dropped by the clients, {r.server_drops} counted by the server; "
            f"connections and in-flight back to baseline after {settled}; "
            f"load average {r.load[0]:.1f} {r.load[1]:.1f} {r.load[2]:.1f}"
        )
        for name, line in sorted(t["per_name"].items()):
            print(f"  - {name}: {line}")
        for kind in t["failure_kinds"][:5]:
            print(f"  - failed: {kind}")
    print(f"- server CPU {cpu.user + cpu.system:.0f} s in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locust", default="locust", help="the locust executable")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--duration", type=int, default=180, help="seconds of load per target")
    parser.add_argument("--settle", type=int, default=60, help="seconds to settle after each round")
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
