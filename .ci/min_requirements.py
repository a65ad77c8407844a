"""Print what `make pytest-min` installs besides chainkit: the LOWEST langchain-core and
langchain-openai that pyproject.toml allows (pinned), and the test libraries of its dev
extra (pytest and its plugins, hypothesis, psutil; not langchain-tests, which needs newer
LangChain). Run from the repository root."""

import re
import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]

LOWEST = re.compile(r"^(langchain-(?:core|openai))\s*>=\s*([^,;\s]+)")
TESTING = re.compile(r"^(pytest[a-z-]*|hypothesis|psutil)\b")

pins = [f"{m[1]}=={m[2]}" for d in project["dependencies"] if (m := LOWEST.match(d))]
tools = [
    d.split("#")[0].strip() for d in project["optional-dependencies"]["dev"] if TESTING.match(d)
]
if len(pins) != 2:
    raise SystemExit(f"expected langchain-core and langchain-openai lower bounds, got {pins}")
sys.stdout.write(" ".join(pins + tools) + "\n")  # words for pip (no shell quoting needed)
