"""The README's service examples (Python blocks that call ``127.0.0.1:8080``) run as written.

``tests/test_readme.py`` runs every other block: each runs here in a
fresh interpreter against a real service on a free loopback port, on a local model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chainkit.models.local import LocalModelServer
from tests.conftest import assert_no_canary
from tests.server.conftest import running

README = Path(__file__).resolve().parents[2] / "README.md"
ADDRESS = "http://127.0.0.1:8080"
BLOCKS = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    if "127.0.0.1:8080" in block
]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_service_block_runs(
    block: str, model_server: LocalModelServer, tmp_path: Path
) -> None:
    with running(model_server) as service:
        script = tmp_path / "block.py"
        script.write_text(block.replace(ADDRESS, service.url))
        result = subprocess.run(  # noqa: S603 - the README's own example
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
            check=False,
        )
    assert result.returncode == 0, f"README block failed:\n{block}\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), "the README block printed nothing"
    assert_no_canary(tmp_path)


def test_the_readme_has_service_examples() -> None:
    assert BLOCKS, "the README's service section lost its httpx example"
