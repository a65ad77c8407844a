"""The README's Python examples run as written, offline, on the local model.

Each ```python block runs in a fresh interpreter in a temporary folder. Blocks
that talk to a server the README tells the reader to start (`chainkit local
serve --port 8000`, `chainkit serve --port 8080`) get the address of one this
test started instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_no_canary

README = Path(__file__).resolve().parent.parent / "README.md"
# Blocks that call the service (`chainkit serve --port 8080`) run against a real
# service in tests/server/test_readme_service.py; the others run here.
BLOCKS = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    if "127.0.0.1:8080" not in block
]


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    from chainkit.testing import local_model_server

    code = BLOCKS[index]
    with local_model_server() as server:
        code = code.replace("http://127.0.0.1:8000/v1", server.base_url)
        script = tmp_path / f"block_{index}.py"
        script.write_text(code)
        result = subprocess.run(  # noqa: S603
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "OPENAI_BASE_URL": server.base_url},
            check=False,
        )
    assert result.returncode == 0, f"README block {index} failed:\n{code}\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), f"README block {index} printed nothing"
    assert_no_canary(tmp_path)
