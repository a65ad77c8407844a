"""Run the notebooks in ``notebooks/`` and compare their outputs with the stored ones.

``python -m tests.notebook_outputs`` (``make notebooks``) executes every notebook with
nbclient, on a kernel that runs this very interpreter, in a scratch folder, and writes
the outputs back into the ``.ipynb`` files. ``tests/test_notebooks.py`` executes them
again and compares :func:`comparable` forms: outputs with times, durations, ids, ports,
addresses and temporary paths replaced by placeholders, and images by their presence.
Everything else (the text the local model writes, counts, the HTML views' words) must
match, so a change that alters what a notebook shows fails until the outputs are
regenerated.
"""

from __future__ import annotations

import gc
import html
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
STORED_KERNELSPEC = {
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "name": "python3",
}


def _kernel(folder: Path) -> Any:
    """A kernel manager for this interpreter, whatever kernels the machine has installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = folder / "kernels" / "chainkit-venv"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chainkit (venv)",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    return KernelManager(kernel_name="chainkit-venv", kernel_spec_manager=specs)


def execute(path: Path, folder: Path) -> Any:
    """The notebook at ``path``, executed top to bottom in ``folder``; a cell that raises fails."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    work = folder / "work"
    work.mkdir()
    km = _kernel(folder)
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
    notebook.metadata["kernelspec"] = dict(STORED_KERNELSPEC)
    coalesce_streams(notebook)
    return notebook


# What varies from run to run, in the order it is replaced.
_UNITS = r"(?:ms|µs|us|ns|sec|seconds|s|KiB|MiB|kB|B|%|/s)"
_VARYING: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b(?:run|req|resp|chatcmpl|cmpl|batch|file)[-_][0-9A-Za-z]{6,}\b"), "<id>"),
    (re.compile(r"\b0x[0-9a-f]{4,}\b", re.I), "<addr>"),
    (re.compile(r"\b(?=[a-f]*\d)[0-9a-f]{6,12}\b"), "<id>"),  # a short run id (UUIDv7 prefix)
    (re.compile(r"\b(?:127\.0\.0\.1|localhost|\[::1\]):\d+"), "<host>"),
    (re.compile(r"(?:/private)?/tmp/[\w.\-/]*"), "<tmp>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:\.\d+)?\b"), "<time>"),
    # a summary line cut to the width: where it is cut depends on the figures' widths
    (re.compile(r"latency p50[^\n…]*…"), "latency <figures>…"),
    (re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?\s*" + _UNITS + r"(?!\w)"), "<num>"),
    (re.compile(r"\b\d+\.\d+\b"), "<num>"),  # any other fractional figure is a measurement
    (re.compile(r"\d[\d.,]*[a-zµ]*…"), "<num>…"),  # a figure cut short
    (re.compile(r"[░▒▓█▏▎▍▌▋▊▉]+"), "<bar>"),  # a timeline's bars are drawn to scale
    (re.compile(r"[━─═]+"), "─"),  # a table's rules are as wide as its widest figure
    (re.compile(r"[ \t]+"), " "),  # columns are padded to the widest figure
]
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
_SRCDOC = re.compile(r'\bsrcdoc="([^"]*)"', re.S)
_TAG = re.compile(r"<[^>]+>")


def normalise(text: str) -> str:
    """``text`` with what varies from run to run replaced by placeholders."""
    for pattern, placeholder in _VARYING:
        text = pattern.sub(placeholder, text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()


def _html_text(markup: str) -> str:
    """What an HTML output says: its text, an embedded page's text included."""
    pages = [_html_text(html.unescape(m.group(1))) for m in _SRCDOC.finditer(markup)]
    markup = _SRCDOC.sub("", markup)
    text = html.unescape(_TAG.sub(" ", _SCRIPT.sub(" ", markup)))
    return "\n".join([" ".join(text.split()), *pages])


def _joined(value: Any) -> str:
    return value if isinstance(value, str) else "".join(value)


def coalesce_streams(notebook: Any) -> None:
    """Merge each cell's consecutive stream outputs of one name (how they split is timing)."""
    for cell in notebook.cells:
        merged: list[Any] = []
        for output in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if (
                output.get("output_type") == "stream"
                and last is not None
                and last.get("output_type") == "stream"
                and last.get("name") == output.get("name")
            ):
                last["text"] = _joined(last["text"]) + _joined(output["text"])
            else:
                merged.append(output)
        if cell.cell_type == "code":
            cell.outputs = merged


def comparable(notebook: Any) -> list[list[str]]:
    """Each code cell's outputs, one string per output, with what varies normalised."""
    coalesce_streams(notebook)
    cells: list[list[str]] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        outputs: list[str] = []
        for output in cell.get("outputs", []):
            kind = output.get("output_type", "")
            if kind == "stream":
                outputs.append(f"{output.get('name')}: {normalise(_joined(output['text']))}")
            elif kind == "error":
                outputs.append(f"error: {output.get('ename')}: {output.get('evalue')}")
            else:
                data = output.get("data", {})
                parts = [kind]
                for mime in sorted(data):
                    if mime.startswith("image/"):
                        parts.append(f"{mime}: <image>")
                    elif mime == "text/html":
                        parts.append(f"{mime}: {normalise(_html_text(_joined(data[mime])))}")
                    elif mime == "text/plain" and "text/html" in data:
                        continue  # the fallback of what the HTML shows (and full of times)
                    elif mime.startswith("text/"):
                        parts.append(f"{mime}: {normalise(_joined(data[mime]))}")
                    else:
                        parts.append(mime)
                outputs.append("\n".join(parts))
        cells.append(outputs)
    return cells


def regenerate(names: list[str] | None = None) -> None:
    """Execute the notebooks (all, or those named) and store them with their outputs."""
    import nbformat

    books = sorted(NOTEBOOKS.glob("*.ipynb"))
    for book in books:
        if names and book.name not in names and book.stem not in names:
            continue
        with tempfile.TemporaryDirectory(prefix="chainkit-notebook-") as folder:
            notebook = execute(book, Path(folder))
        nbformat.validate(notebook)
        nbformat.write(notebook, book)
        print(f"wrote {book.relative_to(NOTEBOOKS.parent)}")


if __name__ == "__main__":
    regenerate(sys.argv[1:])
