"""The notebooks run top to bottom on the local model, show what they are about, and are
stored with the outputs they produce.

Each notebook in ``notebooks/`` is stored with its outputs (``make notebooks`` writes
them) and executed here with nbclient (``tests/notebook_outputs.py``), on a kernel that
runs this very interpreter (the project's venv), in a scratch folder. A cell that raises
fails the test; then the outputs are searched for what each notebook exists to show, and
compared with the stored ones after normalising what varies from run to run (times,
durations, ids, ports, addresses, temporary paths, plot images' bytes).
"""

from __future__ import annotations

import base64
import copy
import difflib
import re
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CANARY_KEY
from tests.notebook_outputs import NOTEBOOKS, comparable, execute, normalise

# What each notebook must show (searched in text, HTML and image outputs).
EXPECTED: dict[str, list[str]] = {
    "01_streaming.ipynb": [
        "OpenAI",  # the seed's completion-style class
        "|",  # chunks printed with the seed's separator
        "...Truncated",  # v1 events cut after five
        "on_chat_model_stream",  # v2 events, viewed by depth
        "time to first chunk",  # capture
        "ck-trace",  # the trace's HTML
        "stream failed: ",  # the error case caught
    ],
    "02_concurrency.ipynb": [
        "3 answers in",  # gather
        "20 facts in",  # semaphore, fixed batches
        "20 of 20 succeeded",  # the runner
        "image/png",  # the plot of each item's start and end
        "ck-live",  # live_stream's in-place table
        "a futuristic city",
    ],
    "03_debugging.ipynb": [
        "good.jsonl: ok",
        "bad.jsonl: failed with",
        "OpenAIConnectionError",
        "iframe srcdoc",  # the viewer in the cell
        "structure",  # the diff
        "replayed failure: OpenAIConnectionError",
        "offline replay gives the recorded story: True",
        "by run name",  # stats
    ],
}


def _read(path: Path) -> Any:
    import nbformat

    return nbformat.read(path, as_version=4)


def _outputs(notebook: Any) -> str:
    parts: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("output_type", ""))
            if "text" in output:
                parts.append(str(output["text"]))
            for mime, data in output.get("data", {}).items():
                parts.append(mime)
                if mime in ("text/plain", "text/html"):
                    parts.append(data if isinstance(data, str) else "".join(data))
    return "\n".join(parts)


def _flat(cells: list[list[str]]) -> list[str]:
    return [f"cell {i}: {line}" for i, c in enumerate(cells) for o in c for line in o.split("\n")]


def test_notebooks_are_stored_with_their_outputs() -> None:
    """Every code cell ran, in order, in one go, without an error; a reader sees the outputs."""
    import nbformat

    books = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [b.name for b in books] == sorted(EXPECTED)
    for book in books:
        notebook = _read(book)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
            f"{book.name} is not stored as one top-to-bottom run: run `make notebooks`"
        )
        assert sum(1 for c in code if c.outputs) >= len(code) - 2, f"{book.name}: few outputs"
        assert all(o.output_type != "error" for c in code for o in c.outputs)
        text = _outputs(notebook)
        for expected in EXPECTED[book.name]:
            assert expected in text, f"{book.name}: {expected!r} not in the stored outputs"
        assert CANARY_KEY not in text
        assert "chainkit.testing" not in "".join(c.source for c in code)  # public API only


def test_make_lab_installs_the_notebook_extra_and_opens_jupyterlab_on_the_notebooks(
    tmp_path: Path,
) -> None:
    """`make -n lab` (the commands, not run): the extra into the venv, then JupyterLab."""
    root = NOTEBOOKS.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.split(r"[<>=\[ ]", req, maxsplit=1)[0] for req in extras["notebook"]}
    assert {"jupyterlab", "ipykernel", "matplotlib", "nbclient", "nbformat"} <= names
    make = shutil.which("make")
    assert make is not None
    venv = tmp_path / "venv"  # a venv that does not exist: make prints the whole set-up
    commands = subprocess.run(  # noqa: S603
        [make, "-n", "-C", str(root), "lab", "notebooks", f"VENV={venv}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    install = commands.index(f'{venv}/bin/python -m pip install --quiet -e ".[notebook]"')
    lab = commands.index(f"{venv}/bin/jupyter lab")
    assert install < lab
    assert commands[lab:].splitlines()[0].endswith(" notebooks/")
    assert f"{venv}/bin/python -m tests.notebook_outputs" in commands


def test_comparison_ignores_what_varies_and_catches_what_a_reader_sees() -> None:
    """The staleness check is robust (times, ids, image bytes) but not toothless (text)."""
    stored = _read(NOTEBOOKS / "02_concurrency.ipynb")
    baseline = comparable(copy.deepcopy(stored))

    varied = copy.deepcopy(stored)
    for cell in varied.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = output.text.replace(" s\n", "9 s\n")  # "1.23 s" -> "1.239 s"
            for mime in output.get("data", {}):
                if mime == "image/png":
                    output.data[mime] = base64.b64encode(b"other bytes").decode()
    assert comparable(varied) == baseline
    assert normalise(f"run {uuid.uuid4()} at 127.0.0.1:{8000} took 12 ms") == normalise(
        f"run {uuid.uuid4()} at 127.0.0.1:{51234} took 3.5 s"
    )

    changed = copy.deepcopy(stored)
    stream = next(o for c in changed.cells for o in c.get("outputs", []) if "text" in o)
    stream.text = stream.text.replace("quantum", "classical")
    assert comparable(changed) != baseline

    no_plot = copy.deepcopy(stored)
    for cell in no_plot.cells:
        cell["outputs"] = [
            o for o in cell.get("outputs", []) if "image/png" not in o.get("data", {})
        ]
    assert comparable(no_plot) != baseline


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_matches_its_stored_outputs(name: str, tmp_path: Path) -> None:
    notebook = execute(NOTEBOOKS / name, tmp_path)
    text = _outputs(notebook)
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: {expected!r} not in the outputs"
    assert "Traceback" not in text
    assert "\x1b[" not in text  # Rich renders into our HTML, never as terminal output
    assert CANARY_KEY not in text
    ran = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in ran)

    fresh, stored = comparable(notebook), comparable(_read(NOTEBOOKS / name))
    if fresh != stored:
        diff = "\n".join(
            difflib.unified_diff(_flat(stored), _flat(fresh), "stored", "now", lineterm="", n=1)
        )
        pytest.fail(f"{name}: stored outputs are stale; run `make notebooks`\n{diff[:4000]}")
