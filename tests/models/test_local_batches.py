"""The local model's /v1/files and /v1/batches through the real openai SDK, over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from chainkit.models.local import LocalModelServer, LocalModelSettings

CHAT = "/v1/chat/completions"
FINAL = ("completed", "failed", "expired", "cancelled")
ORDER = ("validating", "in_progress", "finalizing", "completed")


@pytest.fixture(scope="module")
def slow_server() -> Iterator[LocalModelServer]:
    """Batches take 0.4 s: long enough to watch them move and to cancel them."""
    with LocalModelServer(LocalModelSettings(batch_delay=0.4)) as srv:
        yield srv


@pytest.fixture
def slow(slow_server: LocalModelServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=slow_server.base_url, api_key="x", max_retries=0) as c:
        yield c


def _body(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [{"role": "user", "content": f"Tell me one fact about the number {i}."}],
        **extra,
    }


def _lines(n: int, **extra: Any) -> bytes:
    rows = [
        {"custom_id": f"req-{i}", "method": "POST", "url": CHAT, "body": _body(i, **extra)}
        for i in range(n)
    ]
    return b"\n".join(orjson.dumps(r) for r in rows) + b"\n"


def _submit(client: openai.OpenAI, data: bytes, **kwargs: Any) -> openai.types.Batch:
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h", **kwargs
    )


def _wait(client: openai.OpenAI, batch_id: str) -> tuple[openai.types.Batch, list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.status in FINAL:
            return batch, seen
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id} did not finish: {seen}")


def _read(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).read()
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_files_upload_retrieve_list_content_delete(client: openai.OpenAI) -> None:
    data = _lines(2)
    uploaded = client.files.create(file=("mine.jsonl", data), purpose="batch")
    assert uploaded.object == "file"
    assert uploaded.id.startswith("file-")
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        len(data),
        "mine.jsonl",
        "batch",
    )
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).read() == data
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]
    assert uploaded.id not in [f.id for f in client.files.list(purpose="vision")]
    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    with pytest.raises(openai.NotFoundError, match=uploaded.id):
        client.files.retrieve(uploaded.id)


def test_files_refuse_what_openai_refuses(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("requests.txt", b"{}"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("a.jsonl", b"{}"), purpose="nonsense")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError, match="file-missing"):
        client.batches.create(input_file_id="file-missing", endpoint=CHAT, completion_window="24h")
    uploaded = client.files.create(file=("a.jsonl", _lines(1)), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/moderations",
            completion_window="24h",
        )


def test_batch_life_cycle_and_answers_equal_chat_completions(slow: openai.OpenAI) -> None:
    created = _submit(slow, _lines(6), metadata={"job": "facts"})
    assert (created.status, created.object, created.metadata) == (
        "validating",
        "batch",
        {"job": "facts"},
    )
    assert created.expires_at == created.created_at + 86400
    batch, seen = _wait(slow, created.id)
    assert seen == [s for s in ORDER if s in seen], seen  # never out of order
    assert seen[-1] == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (6, 6)
    assert batch.error_file_id is None
    assert batch.in_progress_at is not None
    assert batch.completed_at is not None
    assert batch.model == "gpt-4o-mini"
    lines = _read(slow, batch.output_file_id)
    assert sorted(line["custom_id"] for line in lines) == sorted(f"req-{i}" for i in range(6))
    assert batch.usage is not None
    assert batch.usage.total_tokens == sum(
        line["response"]["body"]["usage"]["total_tokens"] for line in lines
    )
    for line in lines:
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        i = int(line["custom_id"].split("-")[1])
        direct = slow.chat.completions.create(**_body(i))
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == direct.choices[0].message.content
    assert created.id in [b.id for b in slow.batches.list()]


def test_malformed_lines_fail_the_batch_with_line_errors(client: openai.OpenAI) -> None:
    good = _lines(2).splitlines()
    data = b"\n".join([good[0], b"{not json", good[0], b'{"custom_id": "x", "method": "POST"}'])
    batch, _ = _wait(client, _submit(client, data).id)
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.output_file_id is None
    assert batch.errors is not None
    errors = [(e.line, e.code) for e in batch.errors.data or []]
    assert errors == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "missing_required_parameter"),
    ]


def test_request_faults_and_bad_requests_go_to_the_error_file(client: openai.OpenAI) -> None:
    data = _lines(8) + orjson.dumps(
        {"custom_id": "bad", "method": "POST", "url": CHAT, "body": {"model": "m", "messages": "?"}}
    )
    created = _submit(
        client, data, extra_headers={"X-Chainkit-Faults": "error_rate=0.5,error_statuses=429"}
    )
    batch, _ = _wait(client, created.id)
    assert batch.status == "completed"
    outputs, errors = _read(client, batch.output_file_id), _read(client, batch.error_file_id)
    assert batch.request_counts is not None
    assert batch.request_counts.completed == len(outputs) > 0
    assert batch.request_counts.failed == len(errors) > 1
    assert {line["custom_id"] for line in outputs + errors} == {"bad"} | {
        f"req-{i}" for i in range(8)
    }
    statuses = {line["custom_id"]: line["response"]["status_code"] for line in errors}
    assert statuses.pop("bad") == 400
    assert set(statuses.values()) == {429}
    for line in errors:
        assert line["response"]["body"]["error"]["message"]


def test_a_resubmitted_failed_request_can_succeed(client: openai.OpenAI) -> None:
    faults = {"X-Chainkit-Faults": "error_rate=0.5,error_statuses=500"}
    outcomes: list[int] = []
    for _ in range(6):
        batch, _ = _wait(client, _submit(client, _lines(1), extra_headers=faults).id)
        outcomes.append(batch.request_counts.completed if batch.request_counts else -1)
    assert set(outcomes) == {0, 1}  # the same request, drawn again each time it is seen


def test_a_batch_expires_when_its_window_runs_out(client: openai.OpenAI) -> None:
    created = _submit(client, _lines(4), extra_headers={"X-Chainkit-Faults": "batch_window=0"})
    assert created.expires_at == created.created_at
    batch, _ = _wait(client, created.id)
    assert batch.status == "expired"
    assert batch.expired_at is not None
    errors = _read(client, batch.error_file_id)
    assert [line["error"]["code"] for line in errors] == ["batch_expired"] * 4
    assert all(line["response"] is None for line in errors)
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (0, 4)


def test_a_batch_expiring_part_way_keeps_what_was_done(slow: openai.OpenAI) -> None:
    faults = {"X-Chainkit-Faults": "batch_delay=0.6,batch_window=0.3"}
    batch, _ = _wait(slow, _submit(slow, _lines(20), extra_headers=faults).id)
    assert batch.status == "expired"
    outputs, errors = _read(slow, batch.output_file_id), _read(slow, batch.error_file_id)
    ids = [line["custom_id"] for line in outputs + errors]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(20))  # each exactly once
    assert all(line["error"]["code"] == "batch_expired" for line in errors)
    assert batch.request_counts is not None
    assert batch.request_counts.completed == len(outputs)


def test_cancel_moves_through_cancelling_to_cancelled(slow: openai.OpenAI) -> None:
    created = _submit(slow, _lines(10))
    cancelling = slow.batches.cancel(created.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    batch, _ = _wait(slow, created.id)
    assert batch.status == "cancelled"
    assert batch.cancelled_at is not None
    errors = _read(slow, batch.error_file_id)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert batch.request_counts is not None
    assert batch.request_counts.failed == len(errors) == 10 - batch.request_counts.completed
    assert slow.batches.cancel(created.id).status == "cancelled"  # again: no change
    done, _ = _wait(slow, _submit(slow, _lines(1)).id)
    with pytest.raises(openai.ConflictError, match="status 'completed'"):
        slow.batches.cancel(done.id)
    with pytest.raises(openai.NotFoundError, match="batch_nope"):
        slow.batches.cancel("batch_nope")


async def test_the_async_client_runs_a_batch(aclient: openai.AsyncOpenAI) -> None:
    uploaded = await aclient.files.create(file=("a.jsonl", _lines(3)), purpose="batch")
    batch = await aclient.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
    )
    while batch.status not in FINAL:
        batch = await aclient.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert batch.output_file_id is not None
    content = await aclient.files.content(batch.output_file_id)
    assert len(content.read().splitlines()) == 3
    page = await aclient.batches.list(limit=1)
    assert [b.id for b in page.data] == [batch.id]
