"""chainkit.trace: records, JSONL round trip, truncation, partial lines, secrets, summary, HTML."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from uuid import uuid4

import orjson
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk, HumanMessage
from pydantic import SecretStr

import chainkit.trace
from chainkit.errors import TraceError, UserError, register_secret
from chainkit.trace import (
    SCHEMA_VERSION,
    Chunk,
    Event,
    RunEnded,
    RunStarted,
    Trace,
    TraceHeader,
    to_jsonable,
)
from tests.conftest import CANARY_KEY, assert_no_canary


def _fill(trace: Trace) -> tuple[str, str]:
    """A chain run with a model run inside: start, 3 chunks, ends, plus an event."""
    root, model = uuid4(), uuid4()
    trace.run_started(root, name="story", kind="chain", inputs={"topic": "moon"}, t=1.0)
    trace.run_started(
        model, name="ChatOpenAI", kind="chat_model", parent_run_id=root, inputs=None, t=1.1
    )
    for i, text in enumerate(["", "Once", " upon"]):
        trace.chunk(model, 1.2 + i * 0.1, text)
    trace.run_ended(
        model,
        outputs=AIMessageChunk(content="Once upon"),
        usage={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        t=1.5,
    )
    trace.event(
        {
            "event": "on_chain_start",
            "name": "story",
            "run_id": str(root),
            "parent_ids": [],
            "tags": [],
            "metadata": {},
            "data": {"input": {"topic": "moon"}},
            "t": 1.0,
        }
    )
    trace.run_ended(root, outputs="Once upon", t=1.6)
    return str(root), str(model)


def test_public_names_are_sorted_and_exported() -> None:
    assert chainkit.trace.__all__ == sorted(
        chainkit.trace.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n)
    )
    for name in chainkit.trace.__all__:
        assert hasattr(chainkit.trace, name)


def test_runs_fold_records_and_derive_timings() -> None:
    trace = Trace()
    root_id, model_id = _fill(trace)
    root, model = trace[root_id], trace[model_id]
    assert [r.name for r in trace.runs] == ["story", "ChatOpenAI"]
    assert trace.roots == [root]
    assert root.children == [model]
    assert model.chunks == [(1.2, ""), (1.3, "Once"), (1.4, " upon")]
    assert model.text == "Once upon"
    assert model.ttft == pytest.approx(0.2)  # first chunk *with text*, from the model's start
    assert root.ttft == pytest.approx(0.3)  # a chain's ttft is its first model chunk
    assert model.latency == pytest.approx(0.4)
    assert model.gaps == [pytest.approx(0.1)]
    assert model.chunks_per_s == pytest.approx(10.0)
    assert model.usage == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert root.total_usage == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert root.text == "Once upon"  # a chain's text: its string output
    assert root.status == "ok"
    assert trace.get(uuid4()) is None
    summary = trace.summary()
    assert (summary.calls, summary.runs, summary.chunks, summary.errors) == (1, 2, 2, 0)
    assert summary.usage["total_tokens"] == 5
    assert summary.latency.p50 == pytest.approx(0.6)
    assert "1 calls, 2 runs, 2 chunks" in str(summary)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with Trace(path) as trace:
        root_id, model_id = _fill(trace)
        trace.run_failed(uuid4(), ValueError("boom\nsecond line"), t=2.0)
    lines = path.read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert header["type"] == "trace"
    assert header["schema_version"] == SCHEMA_VERSION
    assert all(orjson.loads(line)["type"] for line in lines)
    loaded = Trace.load(path)
    assert [type(r) for r in loaded.records] == [type(r) for r in trace.records]
    assert [r.model_dump() for r in loaded.records] == [r.model_dump() for r in trace.records]
    assert [(r.run_id, r.name, r.kind, r.chunks, r.text, r.usage) for r in loaded.runs] == [
        (r.run_id, r.name, r.kind, r.chunks, r.text, r.usage) for r in trace.runs
    ]
    assert loaded[model_id].ttft == pytest.approx(trace[model_id].ttft)
    assert loaded[root_id].children[0].run_id == model_id
    assert loaded.events[0]["event"] == "on_chain_start"
    assert loaded.events[0]["t"] == 1.0
    failed = loaded.runs[-1]
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("ValueError", "boom")
    assert loaded.summary().failed_runs == 1
    # save() of an in-memory trace writes the same records
    copy = Trace.load(trace.save(tmp_path / "copy.jsonl"))
    assert [r.model_dump() for r in copy.records] == [r.model_dump() for r in loaded.records]


def test_records_are_written_as_they_happen(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    trace = Trace(path)
    run = uuid4()
    trace.run_started(run, name="m", kind="llm")
    trace.chunk(run, 1.0, "a")
    # no close, no flush: every record is already a whole line in the file
    types = [orjson.loads(line)["type"] for line in path.read_bytes().splitlines()]
    assert types == ["trace", "run_start", "chunk"]
    trace.close()
    trace.close()  # idempotent
    trace.chunk(run, 2.0, "b")  # after close: memory only
    assert len(path.read_bytes().splitlines()) == 3
    assert trace[run].text == "ab"


def test_appending_to_an_existing_file_adds_a_header(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    for _ in range(2):
        with Trace(path) as trace:
            trace.run_started(uuid4(), name="x", kind="chain")
    loaded = Trace.load(path)
    assert len(loaded.headers) == 2
    assert len(loaded.runs) == 2


def test_partial_last_line_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t.jsonl"
    with Trace(path) as trace:
        _fill(trace)
    with path.open("ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"type": "chunk", "t": 3.0, "run_id": "abc", "te')
    with caplog.at_level(logging.WARNING, logger="chainkit.trace"):
        loaded = Trace.load(path)
    assert len(loaded.records) == len(trace.records)
    assert "partial last line" in caplog.text


def test_corrupt_middle_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with Trace(path) as trace:
        _fill(trace)
    lines = path.read_bytes().splitlines()
    lines[2] = b"{not json"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(TraceError, match=r"line 3 is not JSON"):
        Trace.load(path)


def test_invalid_record_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"type": "chunk", "t": "soon", "run_id": "a", "text": "x"}\n')
    with pytest.raises(TraceError, match=r"line 1: chunk record field t"):
        Trace.load(path)


def test_unknown_record_types_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"type": "from_the_future", "x": 1}\n'
        '{"type": "chunk", "t": 1, "run_id": "a", "text": "x"}\n'
    )
    loaded = Trace.load(path)
    assert [r.type for r in loaded.records] == ["chunk"]
    assert loaded.runs[0].name == "unknown"  # a run whose start was not recorded


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    header = TraceHeader(created="x", clock_origin=0, wall_origin=0).model_dump()
    header["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(header) + "\n")
    with pytest.raises(TraceError, match="newer than this chainkit reads"):
        Trace.load(path)


def test_a_missing_file_is_a_misuse(tmp_path: Path) -> None:
    # a UserError: the CLI exits 2, as for a missing batch input
    with pytest.raises(UserError, match=r"nope\.jsonl does not exist"):
        Trace.load(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="is a directory"):
        Trace.load(tmp_path)


def test_inputs_and_outputs_are_truncated(tmp_path: Path) -> None:
    trace = Trace(tmp_path / "t.jsonl", max_chars=10)
    run = uuid4()
    trace.run_started(run, name="c", kind="chain", inputs={"text": "x" * 100})
    trace.chunk(run, 1.0, "y" * 50)  # chunks are never cut
    trace.run_ended(run, outputs=["z" * 30], t=2.0)
    trace.close()
    assert trace[run].inputs == {"text": "x" * 10 + "…[+90 chars]"}
    assert trace[run].outputs == ["z" * 10 + "…[+20 chars]"]
    loaded = Trace.load(tmp_path / "t.jsonl")
    assert loaded[run].inputs == trace[run].inputs
    assert loaded[run].text == "y" * 50
    assert Trace(max_chars=0).max_chars == 0
    assert to_jsonable("x" * 100, 0) == "x" * 100


def test_plain_json_for_langchain_objects() -> None:
    value = to_jsonable(
        {
            "messages": [HumanMessage("hi")],
            "chunk": AIMessageChunk(
                content="a",
                usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
            ),
            "doc": Document(page_content="p", metadata={"source": "s"}),
            "id": uuid4(),
            "blob": b"abc",
            "obj": object(),
        }
    )
    orjson.dumps(value)  # plain JSON
    assert value["messages"] == [{"type": "human", "content": "hi"}]
    assert value["chunk"]["usage_metadata"]["total_tokens"] == 2
    assert value["doc"] == {"type": "Document", "page_content": "p", "metadata": {"source": "s"}}
    assert value["blob"] == "<3 bytes>"


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    register_secret("my-private-value-1234")
    path = tmp_path / "t.jsonl"
    with Trace(path) as trace:
        run = uuid4()
        trace.run_started(
            run,
            name="c",
            kind="chain",
            metadata={"api_key": CANARY_KEY, "max_tokens": 5, "input_tokens": 3},
            inputs={
                "key": SecretStr(CANARY_KEY),
                "note": f"my key is {CANARY_KEY}",
                "other": "my-private-value-1234",
            },
        )
        trace.chunk(run, 1.0, f"leaked {CANARY_KEY}")
        trace.event(
            {
                "event": "on_x",
                "name": "n",
                "run_id": "r",
                "parent_ids": [],
                "tags": [],
                "metadata": {"token": "abcdefgh123"},
                "data": {"Authorization": f"Bearer {CANARY_KEY}"},
                "t": 1.0,
            }
        )
        trace.run_failed(run, RuntimeError(f"bad key {CANARY_KEY}"))
    assert_no_canary(path)
    text = path.read_text()
    assert "my-private-value-1234" not in text
    assert "abcdefgh123" not in text
    assert '"max_tokens":5' in text  # counts are not secrets
    assert trace[run].metadata["api_key"] == "***"
    saved = trace.save(tmp_path / "saved.jsonl")
    assert_no_canary(saved)


def test_records_materialise_lazily_and_validate() -> None:
    trace = Trace()
    _fill(trace)
    kinds = [type(r) for r in trace.records]
    assert kinds[:3] == [TraceHeader, RunStarted, RunStarted]
    assert kinds.count(Chunk) == 3
    assert Event in kinds
    assert RunEnded in kinds
    assert len(trace) == len(kinds)
    assert list(trace) == trace.records


def test_placeholders_and_late_parents() -> None:
    trace = Trace()
    parent, child = uuid4(), uuid4()
    trace.chunk(child, 1.0, "x")  # start never seen
    trace.run_started(child, name="m", kind="llm", parent_run_id=parent, t=0.5)
    trace.run_started(parent, name="p", kind="chain", t=0.4)  # parent seen after child
    trace.run_ended(parent, t=2.0)  # a parent's end before its child's
    trace.run_ended(child, t=3.0)
    assert trace[child].name == "m"
    assert trace[child].text == "x"
    assert trace[parent].children == [trace[child]]
    assert trace.roots == [trace[parent]]
    assert trace[child].status == "ok"


def test_html_summary_and_tree() -> None:
    trace = Trace()
    root_id, _ = _fill(trace)
    trace.run_started(uuid4(), name="<script>", kind="chain", parent_run_id=root_id)
    html = trace._repr_html_()
    assert "<table>" in html
    assert "story" in html
    assert "ChatOpenAI" in html
    assert "&lt;script&gt;" in html
    assert "<script>" not in html
    assert "calls" in html
    assert "Trace" in repr(trace)
