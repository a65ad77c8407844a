"""Fixtures for the trace readers: synthetic traces and real recordings of the local model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chainkit.callbacks import EventCapture, StreamCapture
from chainkit.debug._sample import synthetic_trace
from chainkit.trace import Trace

TOPIC = {"topic": "goldfish on the moon"}


@pytest.fixture
def small_trace() -> Trace:
    """Three pipeline calls (12 runs), the second failing after a retry, with events."""
    return synthetic_trace(3, fail_every=2, events=True)


@pytest.fixture
def small_file(tmp_path: Path, small_trace: Trace) -> Path:
    return small_trace.save(tmp_path / "small.jsonl")


@dataclass(frozen=True)
class Recordings:
    """Trace files of outline_story on the local model: one run that worked, one that failed."""

    ok: Path
    ok_again: Path
    failed: Path


def record_outline_story(path: Path, *, fail: bool, topic: dict[str, Any] = TOPIC) -> Path:
    """Record outline_story streamed (or, ``fail``: invoked on a broken model) to ``path``."""
    from chainkit.chains import outline_story
    from chainkit.models import load_model
    from chainkit.testing import local_model_server

    faults: dict[str, Any] = {"disconnect_rate": 1.0} if fail else {}
    with local_model_server(token_delay=0.003, ttft=0.01, seed=3, **faults) as server:
        model = load_model(base_url=server.base_url, max_tokens=24, max_retries=0)
        trace = Trace(path)
        handlers = [StreamCapture(trace, strict=True), EventCapture(trace, strict=True)]
        chain = outline_story(model)
        try:
            if fail:  # invoke: a failed sync stream leaves LangChain generators to the GC
                chain.invoke(topic, config={"callbacks": handlers})
            else:
                for _ in chain.stream(topic, config={"callbacks": handlers}):
                    pass
        except Exception:  # noqa: BLE001 - the failing recording fails on purpose
            assert fail, "the calm recording failed"
        else:
            assert not fail, "the failing recording did not fail"
        trace.close()
    return path


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Recordings:
    """Real traces: outline_story streamed twice on a calm local model, once on a broken one."""
    folder = tmp_path_factory.mktemp("recordings")
    return Recordings(
        ok=record_outline_story(folder / "ok.jsonl", fail=False),
        ok_again=record_outline_story(folder / "ok_again.jsonl", fail=False),
        failed=record_outline_story(folder / "failed.jsonl", fail=True),
    )


def haiku_chain(local_server: Any) -> Any:
    """A one-step chain (prompt | ChatOpenAI on the local model | str), 12 tokens."""
    from chainkit.chains import make_chain
    from chainkit.models import load_model

    return make_chain(
        "Write a haiku about {topic}.",
        model=load_model(base_url=local_server.base_url, max_tokens=12),
    )
