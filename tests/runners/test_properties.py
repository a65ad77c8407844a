"""Property-based: any JSONL input file gives one record per non-blank line; any bytes added to
a results file leave `--resume` with a clear error or a complete file; never a traceback, a
hang or memory sized by what the file claims."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chainkit.errors import ChainkitError
from chainkit.runners import run_batch
from tests.runners.conftest import echo_chain

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
FAST: dict[str, Any] = {"progress": False, "backoff_base": 0.001, "backoff_max": 0.01}

TEXT = st.text(st.characters(codec=None) | st.sampled_from("\ud800\x00\x1b\n"), max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
LINE = st.one_of(
    st.builds(lambda n: json.dumps({"n": n}), st.integers(0, 9)),
    st.builds(json.dumps, JSON),
    st.builds(
        lambda n, extra: json.dumps({"n": n, **extra}),
        st.integers(0, 9),
        st.dictionaries(TEXT, JSON, max_size=2),
    ),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


def _records(path: Path) -> list[dict[str, Any]]:
    lines = [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]
    return [line for line in lines if "header" not in line]


def _lenient_chain() -> Any:
    from langchain_core.runnables import RunnableLambda

    async def run(value: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return f"out-{value.get('n')!r}"[:40]

    return RunnableLambda(run, name="lenient")


@SETTINGS
@given(lines=st.lists(LINE, max_size=6))
@example(lines=['{"n": "\\ud800"}', '{"\\udfff": 1}']).via("lone surrogates")
@example(lines=["[" * 5000 + "]" * 5000]).via("deep nesting")
def test_any_input_file_gives_one_record_per_line(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.jsonl"
        source.write_bytes(
            "".join(line.replace("\n", " ") + "\n" for line in lines).encode(
                "utf-8", "surrogatepass"
            )
        )
        expected = sum(1 for raw in source.read_bytes().split(b"\n") if raw.strip())
        out = Path(folder) / "out.jsonl"
        report = asyncio.run(run_batch(_lenient_chain(), source, output=out, **FAST))
        assert report.done == expected
        records = _records(out)
        assert sorted(r["index"] for r in records) == list(range(expected))
        for record in records:  # each bad line is an error record naming its line
            if record["error"] is not None:
                assert record["error"]["message"], record


@SETTINGS
@given(
    tail=st.lists(
        st.one_of(
            st.binary(max_size=40),
            JSON.map(lambda v: json.dumps(v).encode()),
            st.builds(
                lambda i, e: json.dumps(
                    {"index": i, "input": {"n": 1}, "output": "x", "error": e}
                ).encode(),
                st.integers(-5, 2**63 - 1) | st.sampled_from([10, 11, 4611686018427387904]),
                st.none() | JSON,
            ),
        ),
        max_size=5,
    )
)
def test_any_bytes_in_a_results_file_resume_clearly(tail: list[bytes]) -> None:
    inputs = [{"n": i} for i in range(10)]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.jsonl"
        asyncio.run(run_batch(echo_chain(), inputs[:5], output=out, **FAST))
        with out.open("ab") as handle:
            for raw in tail:
                handle.write(raw.replace(b"\n", b" ") + b"\n")
        try:
            report = asyncio.run(run_batch(echo_chain(), inputs, output=out, resume=True, **FAST))
        except ChainkitError as exc:  # a clear, one-line refusal (e.g. the ids changed)
            refusal = str(exc)
        else:
            refusal = ""
        if refusal:
            assert "\n" not in refusal
            return
        assert report.skipped + report.done == 10
        indexes = {r["index"] for r in _records_tolerant(out) if isinstance(r.get("index"), int)}
        assert set(range(10)) <= indexes


def _records_tolerant(path: Path) -> list[dict[str, Any]]:
    found = []
    for raw in path.read_bytes().splitlines():
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and "header" not in data:
            found.append(data)
    return found
