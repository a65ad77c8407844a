"""The notebooks run top to bottom on the local model, and show what they are about.

Each notebook in ``notebooks/`` is stored without outputs and executed here with
nbclient, on a kernel that runs this very interpreter (the project's venv), in a
scratch folder. A cell that raises fails the test; then the outputs are searched
for what each notebook exists to show.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CANARY_KEY

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

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


def _kernel(tmp_path: Path) -> Any:
    """A kernel manager for this interpreter, whatever kernels the machine has installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "chainkit-venv"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chainkit (venv)",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="chainkit-venv", kernel_spec_manager=specs)


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


def test_notebooks_are_stored_without_outputs() -> None:
    import nbformat

    books = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [b.name for b in books] == sorted(EXPECTED)
    for book in books:
        notebook = nbformat.read(book, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{book.name} is stored with outputs"
                assert cell.execution_count is None


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs(name: str, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    km = _kernel(tmp_path)
    client = NotebookClient(
        notebook,
        km=km,
        timeout=180,
        allow_errors=False,
        resources={"metadata": {"path": str(work)}},
    )
    try:
        client.execute()
    finally:  # nbclient leaves a kernel manager it was given running: stop it here
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        km.cleanup_resources()
        gc.collect()
    text = _outputs(notebook)
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: {expected!r} not in the outputs"
    assert "Traceback" not in text
    assert "\x1b[" not in text  # Rich renders into our HTML, never as terminal output
    assert CANARY_KEY not in text
    ran = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in ran)
