"""The runner on Ray (``run_batch(..., backend="ray")``), on one local Ray instance.

Ray is started once (``ray.init(num_cpus=2)``, for this module: the only one using it); the
worker actors of a finished batch stay up for the next one (``keep_workers``),
so only the first batch and the replacements of killed workers pay for
starting worker processes. The local model runs in this process; the workers
reach it over loopback by its base URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from langchain_core.runnables import RunnableLambda

from chainkit.errors import ChainNotPortableError, ConfigError, MissingAPIKeyError
from chainkit.runners import iter_results, read_header, run_batch
from chainkit.testing import local_model_server
from tests.conftest import assert_no_canary
from tests.runners.conftest import fact_chain, fact_inputs

ray = pytest.importorskip(
    "ray", reason="the Ray backend needs the extra: pip install 'chainkit[ray]'"
)

from chainkit.runners._ray import (  # noqa: E402 - only once Ray is known to be there
    ChainRecipe,
    RayBatchReport,
    failure_error,
    release_ray_workers,
    run_batch_ray,
)
from chainkit.runners._ray_transport import pickle_chain  # noqa: E402
from chainkit.runners._ray_worker import failure_of  # noqa: E402

pytestmark = pytest.mark.slow

FAST: dict[str, Any] = {"progress": False, "backoff_base": 0.01, "backoff_max": 0.1}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray instance (2 CPUs, no dashboard) for the run; its GCS address.

    Module-scoped: this module is the only one that needs Ray, and so Ray's processes
    and threads end here instead of idling through the rest of the suite.
    """
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            namespace="chainkit",
            configure_logging=False,
            log_to_driver=False,
        )
    yield str(ray.get_runtime_context().gcs_address)
    release_ray_workers()
    if started:
        ray.shutdown()


def records_in(path: Path) -> list[dict[str, Any]]:
    """Records on complete lines of a result file (headers left out)."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[:-1]  # a partial last line has no "\n"
    return [d for d in (orjson.loads(x) for x in lines if x.strip()) if "header" not in d]


def comparable(record: Any) -> dict[str, Any]:
    """What must not depend on where a record was made (timings left out)."""
    data = record if isinstance(record, dict) else record.model_dump(mode="json")
    keys = ("index", "id", "line", "input", "output", "error", "attempts", "usage")
    return {k: data[k] for k in keys}


def number_of(prompt: str) -> int:
    found = re.search(r"number (\d+)", prompt)
    assert found is not None, prompt
    return int(found.group(1))


# ---------------------------------------------------------------- no cluster needed


def test_a_chain_that_does_not_pickle_is_refused_naming_the_part() -> None:
    lock = threading.Lock()

    def guarded(value: dict[str, Any]) -> str:
        with lock:
            return str(value)

    chain = fact_chain_at_placeholder() | RunnableLambda(guarded, name="guarded")
    with pytest.raises(ChainNotPortableError) as caught:
        pickle_chain(chain)
    message = str(caught.value)
    assert "cannot be sent to the Ray workers" in message
    assert "last" in message  # the path into the chain: chain.last (the lambda)
    assert "ChainRecipe(" in message
    assert "\n" not in message


def fact_chain_at_placeholder() -> Any:
    from tests.runners.conftest import fact_chain_at

    return fact_chain_at("http://127.0.0.1:9/v1")


def test_openai_models_travel_as_settings_without_their_key() -> None:
    from ray import cloudpickle

    from tests.runners.conftest import fact_chain_at

    secret = "sk-travel-test-0123456789abcdef"
    chain = fact_chain_at("http://127.0.0.1:9/v1", api_key=secret, max_retries=5)
    blob = pickle_chain(chain)
    assert secret.encode() not in blob
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-worker-own-key-0123456789")
        copy = cloudpickle.loads(blob)
    model = copy.steps[1]
    assert model.openai_api_key.get_secret_value() == "sk-worker-own-key-0123456789"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert (model.model_name, model.max_tokens, model.max_retries) == ("chainkit-local", 16, 5)
    # the local model's dummy key is no secret: it travels
    local = cloudpickle.loads(pickle_chain(fact_chain_at("http://127.0.0.1:9/v1")))
    assert local.steps[1].openai_api_key.get_secret_value() == "chainkit-local"


def test_worker_failures_come_back_typed_and_in_one_line() -> None:
    error = failure_error(failure_of(MissingAPIKeyError("openai", "OPENAI_API_KEY")))
    assert isinstance(error, ConfigError)
    assert "Ray workers have no OPENAI_API_KEY" in str(error)
    from chainkit.errors import UnknownChainError

    # the failure crosses from the worker pickled, as Ray sends it; the error keeps its fields
    sent = pickle.dumps(failure_of(UnknownChainError("fatc", ["fact", "song"])))
    unknown = failure_error(pickle.loads(sent))  # noqa: S301 - bytes made just above
    assert isinstance(unknown, UnknownChainError)
    assert unknown.suggestions == ["fact"]
    assert "did you mean fact" in str(unknown)
    other = failure_error(failure_of(KeyError("boom\nsecond line")))
    assert "a Ray worker failed: KeyError" in str(other)
    assert "\n" not in str(other)


async def test_options_that_do_not_apply_on_ray_are_refused_up_front() -> None:
    chain = fact_chain_at_placeholder()
    with pytest.raises(ConfigError, match="runs only on the local backend"):
        await run_batch_ray(chain, [{"n": 1}], strategy="gather", **FAST)
    with pytest.raises(ConfigError, match="callbacks"):
        await run_batch_ray(chain, [{"n": 1}], callbacks=[object()], **FAST)
    with pytest.raises(ConfigError, match="workers must be"):
        await run_batch_ray(chain, [{"n": 1}], workers=0, **FAST)
    with pytest.raises(ConfigError, match="unknown backend"):
        await run_batch(chain, [{"n": 1}], backend="dask", **FAST)
    with pytest.raises(ConfigError, match="only with backend='ray'"):
        await run_batch(chain, [{"n": 1}], workers=2, **FAST)


async def test_without_ray_installed_the_backend_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    with pytest.raises(ConfigError, match=r"pip install 'chainkit\[ray\]'"):
        await run_batch(fact_chain_at_placeholder(), [{"n": 1}], backend="ray", **FAST)


def test_cli_ray_options_without_the_ray_backend_are_a_usage_error(tmp_path: Path) -> None:
    from chainkit.cli import main

    source = tmp_path / "in.jsonl"
    source.write_text('{"n": 1}\n')
    args = ["batch", "fact", "-i", str(source), "-o", str(tmp_path / "out.jsonl")]
    assert main([*args, "--workers", "2", "--no-progress"]) == 2


# ---------------------------------------------------------------- on the local Ray instance


async def test_a_batch_on_ray_equals_the_local_runners(ray_cluster: str, tmp_path: Path) -> None:
    n = 60
    inputs = [*fact_inputs(n), {"number": 1}]  # the last one lacks the variable
    output = tmp_path / "ray.jsonl"
    ahead: list[int] = []

    async def lazily() -> AsyncIterator[dict[str, Any]]:
        """The inputs, noting how far reading runs ahead of writing (back-pressure)."""
        for position, value in enumerate(inputs):
            ahead.append(position - len(records_in(output)))
            yield value

    with local_model_server() as server:
        local = await run_batch(fact_chain(server), inputs, **FAST)
        report = await run_batch_ray(
            fact_chain(server),
            lazily(),
            output=output,
            ordered=True,
            workers=2,
            max_concurrency=4,
            block_size=5,
            **FAST,
        )
        # the same chain by name, built by each worker (the warm workers are reused)
        by_name = await run_batch(
            ChainRecipe("fact", model="openai:chainkit-local", base_url=server.base_url),
            fact_inputs(n),
            backend="ray",
            workers=2,
            **FAST,
        )
        reference = await run_batch(
            ChainRecipe("fact", model="openai:chainkit-local", base_url=server.base_url).build(),
            fact_inputs(n),
            **FAST,
        )

    assert isinstance(report, RayBatchReport)
    records = records_in(output)
    assert [r["index"] for r in records] == list(range(n + 1))  # ordered, one per input
    expected = {r.index: comparable(r) for r in local.results}
    assert [comparable(r) for r in records] == [expected[i] for i in range(n + 1)]
    assert records[-1]["error"]["type"] == "MissingVariableError"
    assert (report.succeeded, report.failed) == (n, 1)
    assert (report.usage, report.attempts) == (local.usage, local.attempts)
    assert len(report.items_per_worker) == 2
    assert all(count > 0 for count in report.items_per_worker.values())
    header = read_header(output)
    assert header is not None
    assert header.settings["backend"] == "ray"
    # the driver never read more than the blocks in flight (2 workers x 2 blocks of 5)
    # plus the reorder buffer (64) and one block ahead of what it wrote
    assert 0 < max(ahead) <= 2 * 2 * 5 + 64 + 5

    assert isinstance(by_name, RayBatchReport)
    assert by_name.reused_workers == 2
    assert sorted(comparable(r)["output"] for r in by_name.results) == sorted(
        comparable(r)["output"] for r in reference.results
    )
    assert_no_canary(tmp_path)


async def test_iter_results_on_ray(ray_cluster: str) -> None:
    with local_model_server() as server:
        stream = iter_results(fact_chain(server), fact_inputs(12), backend="ray", workers=2, **FAST)
        indexes = [record.index async for record in stream]
    assert sorted(indexes) == list(range(12))
    assert isinstance(stream.report, RayBatchReport)
    assert stream.report.succeeded == 12


def test_chainkit_batch_on_ray_then_resumed_locally(
    ray_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chainkit.cli import main

    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"n": {i}}}\n' for i in range(20)) + "not json\n")
    out = tmp_path / "out.jsonl"
    args = ["batch", "fact", "-i", str(source), "-o", str(out), "--no-progress", "--json"]
    # the default model is this process's local model: the workers reach it by its URL
    assert main([*args, "--backend", "ray", "--workers", "2"]) == 1  # the bad line failed
    report = json.loads(capsys.readouterr().out)
    assert (report["succeeded"], report["failed"]) == (20, 1)
    assert report["ray"]["workers"] == 2
    assert sorted(r["index"] for r in records_in(out)) == list(range(21))
    bad = [r for r in records_in(out) if r["error"] is not None]
    assert [(r["line"], r["error"]["type"]) for r in bad] == [(21, "InputError")]
    # the file records the chain, not where it ran: the local backend resumes it
    assert main([*args, "--resume"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert (resumed["skipped"], resumed["succeeded"]) == (21, 0)
    assert_no_canary(tmp_path)


async def test_rpm_is_global_across_two_workers(ray_cluster: str) -> None:
    rpm, n = 360.0, 24  # 6 a second, for the two workers together
    with local_model_server() as server:
        report = await run_batch_ray(
            fact_chain(server),
            fact_inputs(n),
            rpm=rpm,
            tpm=10**6,  # never the binding limit, but every attempt goes through it too
            workers=2,
            max_concurrency=4,
            **FAST,
        )
        starts = sorted(entry["t_start"] for entry in server.request_log())

    assert report.succeeded == n
    assert len(report.items_per_worker) == 2
    assert all(count > 0 for count in report.items_per_worker.values())
    assert len(starts) == n
    # in any window of W seconds, at most rpm * W / 60 requests, plus the one that opened
    # it and one for the hop from the limiter actor to the model
    for window in (1.0, 2.0):
        allowed = rpm * window / 60 + 2
        for i, start in enumerate(starts):
            inside = sum(1 for t in starts[i:] if t < start + window)
            assert inside <= allowed, (window, inside, allowed)
    # two workers each held to rpm on their own would take half this long
    assert starts[-1] - starts[0] >= 0.8 * (n - 1) * 60 / rpm


async def test_faults_and_429_cool_downs_still_give_one_record_per_input(ray_cluster: str) -> None:
    n = 60
    faults = {"error_rate": 0.25, "error_statuses": (429, 500, 503), "retry_after": 0.1, "seed": 3}
    with local_model_server(**faults) as server:
        report = await run_batch_ray(
            fact_chain(server), fact_inputs(n), workers=2, max_concurrency=4, retries=8, **FAST
        )
        log = server.request_log()
    with local_model_server() as server:
        expected = await run_batch(fact_chain(server), fact_inputs(n), **FAST)

    assert report.succeeded == n
    assert sorted(r.index for r in report.results) == list(range(n))
    by_index = {r.index: r.output for r in expected.results}
    assert all(r.output == by_index[r.index] for r in report.results)
    statuses = [e["status"] for e in log]
    assert 429 in statuses
    assert report.retries == len(log) - n  # every failed attempt was retried once, no more
    assert report.rate_limited == statuses.count(429)  # counted by the workers
    assert report.rate_limit_wait > 0  # the cool-downs were sat out


async def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    ray_cluster: str, tmp_path: Path
) -> None:
    n = 80
    output = tmp_path / "out.jsonl"
    with local_model_server(latency="fixed:0.15") as server:
        expected = await run_batch(fact_chain(server), fact_inputs(n), max_concurrency=40, **FAST)
        server.reset_stats()
        batch = asyncio.create_task(
            run_batch_ray(
                fact_chain(server),
                fact_inputs(n),
                output=output,
                workers=2,
                max_concurrency=4,
                **FAST,
            )
        )
        killed = None
        while not batch.done():
            if killed is None and len(records_in(output)) >= 10:
                names = [
                    a["name"]
                    for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["name"].startswith("chainkit-worker-")
                ]
                assert names
                killed = names[0]
                ray.kill(ray.get_actor(killed, namespace="chainkit"), no_restart=True)
            await asyncio.sleep(0.02)
        report = await batch

    assert killed is not None
    records = records_in(output)
    assert sorted(r["index"] for r in records) == list(range(n))  # none lost, none twice
    by_index = {r.index: r.output for r in expected.results}
    assert all(r["error"] is None and r["output"] == by_index[r["index"]] for r in records)
    assert report.worker_restarts == 1
    assert report.rerun_items > 0
    assert report.succeeded == n


DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from chainkit.runners._ray import ChainRecipe, run_batch_ray

    address, inputs, output = sys.argv[1:4]
    asyncio.run(run_batch_ray(
        ChainRecipe("fact", model="openai:chainkit-local"), inputs, output=output,
        ray_address=address, workers=1, worker_cpus=0, max_concurrency=4, progress=False,
    ))
    """
)


async def test_resume_after_the_driver_is_killed(ray_cluster: str, tmp_path: Path) -> None:
    n = 60
    inputs = tmp_path / "in.jsonl"
    inputs.write_bytes(b"".join(orjson.dumps(value) + b"\n" for value in fact_inputs(n)))
    output = tmp_path / "out.jsonl"
    # the other driver's worker reserves no CPU: this process's idle workers hold both,
    # and the resumed run below reuses them
    with local_model_server(latency="fixed:0.1") as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url}
        errors = tmp_path / "driver.err"
        with errors.open("wb") as stderr:
            driver = subprocess.Popen(  # noqa: S603, ASYNC220 - our own script; polled below
                [sys.executable, "-c", DRIVER, ray_cluster, str(inputs), str(output)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 80
        while len(records_in(output)) < 8:
            assert driver.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, "the driver made no progress"
            await asyncio.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert driver.wait(timeout=30) == -signal.SIGKILL
        before = {r["index"] for r in records_in(output)}

        report = await run_batch_ray(
            ChainRecipe("fact", model="openai:chainkit-local", base_url=server.base_url),
            inputs,
            output=output,
            resume=True,
            workers=2,
            **FAST,
        )
        log = server.request_log()

    records = records_in(output)
    assert sorted(r["index"] for r in records) == list(range(n))  # exactly one per input
    assert all(r["error"] is None for r in records)
    assert report.skipped == len(before)
    assert report.skipped + report.succeeded == n
    assert report.reused_workers == 2
    for raw in output.read_bytes().splitlines():  # the cut last line was repaired
        orjson.loads(raw)
    # no call for an input after it was recorded
    later = {number_of(e["prompt"]) for e in log if e["t_start"] > killed_at}
    assert not later & before
