"""`chainkit chains` and `chainkit chains show`: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chainkit.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "chains"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "chains")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["name", "description", "variables"]
    song = next(line for line in lines if line.startswith("song "))
    assert "A one-verse song about {topic}." in song
    assert song.rstrip().endswith("topic")
    assert any(line.startswith("outline_story ") for line in lines)


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "chains", "--json")
    assert code == 0
    chains = {c["name"]: c for c in json.loads(out)}
    assert chains["fact"]["variables"] == ["n"]
    assert chains["extract"]["parser"] == "pydantic:Extraction"
    assert chains["song"]["source"] == "builtin"


def test_list_with_spec_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "chains", "--chains-dir", str(EXAMPLES))
    assert code == 0, err
    limerick = next(line for line in out.splitlines() if line.startswith("limerick "))
    assert "topic, [mood]" in limerick  # a default is an optional input
    assert "limerick.toml" in limerick  # the source column appears with spec chains


def test_env_var_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAINKIT_CHAINS_DIR", str(EXAMPLES))
    code, out, _ = run(capsys, "chains", "--json")
    assert code == 0
    assert "recipe" in {c["name"] for c in json.loads(out)}


def test_show_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "chains", "show", "song")
    assert code == 0, err
    assert "name:        song" in out
    assert "variables:   topic" in out
    assert "model:       local (default: $CHAINKIT_MODEL or local)" in out
    assert "parser:      str" in out
    assert "Write me a 1 verse song about {topic}." in out
    assert "| ChatOpenAI |" in out  # the graph, built on the real model class
    assert "| StrOutputParser |" in out


def test_show_spec_with_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "chains", "show", "limerick", "--chains-dir", str(EXAMPLES), "--model", "local:x"
    )
    assert code == 0, err
    assert "model:       local:x" in out
    assert "defaults:    mood='cheerful'" in out
    assert "You are a witty poet." in out  # the system message
    assert str(EXAMPLES / "limerick.toml") in out


def test_show_structured_graph(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "chains", "show", "outline_story")
    assert code == 0
    assert "| word_count |" in out
    assert out.count("| ChatOpenAI |") == 3


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("chainkit: error: ")
    return lines[0]


def test_unknown_chain_exits_2_with_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "chains", "show", "haikuu")
    assert code == 2
    assert out == ""
    assert "unknown chain 'haikuu'; did you mean haiku?" in one_error_line(err)


def test_broken_spec_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('template = "Hi {x}"\ntemplate_format = "jinja2"\n')
    for argv in (["chains"], ["chains", "show", "song"], ["chains", "--json"]):
        code, _, err = run(capsys, *argv, "--chains-dir", str(tmp_path))
        assert code == 2
        line = one_error_line(err)
        assert str(tmp_path / "bad.toml") in line
        assert "can run code" in line


def test_missing_folder_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "chains", "--chains-dir", str(tmp_path / "nope"))
    assert code == 2
    assert "is not a folder" in one_error_line(err)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "chains", "--help")
    assert code == 0
    assert "--chains-dir" in out
    assert "show" in out
    code, out, _ = run(capsys, "chains", "show", "--help")
    assert code == 0
    assert "--model" in out
