"""Values that validate against a JSON Schema, drawn from the prompt's words.

Used for structured output (``response_format`` ``json_schema``/``json_object``)
and tool-call arguments. Handles types (and type lists), ``required``,
``enum``/``const``, nested objects, arrays (``minItems``/``maxItems``,
``uniqueItems``), ``$ref`` into ``$defs``/``definitions``, ``anyOf``/``oneOf``
(``Optional`` fields), ``allOf``, numeric bounds, string lengths and the easy
``format``s (date, date-time, time, email, uri, uuid). A ``title`` string gets
a title-like phrase from the prompt, a ``keywords`` list gets its key words,
numbers in the prompt fill integer fields in order.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from typing import Any

from chainkit.models.local._analysis import Analysis, title_case
from chainkit.models.local._errors import BadRequest
from chainkit.models.local._instructed import INGREDIENTS, STEPS, write
from chainkit.models.local._tokens import Rng

__all__ = ["SchemaValues", "json_object"]

_MAX_DEPTH = 8
# Limits on the work one schema may ask for (each beyond is a 400 naming the keyword)
MAX_ITEMS = 1_000  # minItems
MAX_STRING = 100_000  # minLength, in characters
MAX_PROPERTIES = 1_000  # minProperties
MAX_VALUE_CHARS = 2_000_000  # all strings of one answer together
_INT64 = 2**63 - 1
_OPTIONAL_DEPTH = 2  # below this depth, optional fields are omitted and Optional ones null
_TEXT_FIELDS = (
    "summary", "description", "content", "text", "body", "answer", "explanation",
    "reason", "reasoning", "response", "message", "output", "result", "details", "story",
    "verse", "poem", "song", "lyrics", "joke", "fact", "comment", "notes", "justification",
)  # fmt: skip
_LIST_OF_WORDS = ("keywords", "tags", "topics", "labels", "categories", "terms", "key_words")
_SENTINEL_NAMES = ("Alex Morgan", "Sam Rivera", "Jordan Lee", "Ada Park")
# a name given in quotes ('...', "...", “...”, 「...」), kept as written (any script)
_QUOTED_RE = re.compile(
    "(?:^|(?<=[\\s(:]))['\"\u201c\u300c]([^'\"\u201d\u300d\\n]{1,80})['\"\u201d\u300d](?!\\w)"
)


class SchemaValues:
    """Generate values for schemas rooted at ``root`` (for ``$ref`` lookups)."""

    def __init__(
        self,
        root: dict[str, Any],
        analysis: Analysis,
        rng: random.Random,
        param: str = "response_format.json_schema.schema",
    ) -> None:
        self.root = root
        self.param = param
        self._chars = 0
        self.a = analysis
        self.rng = rng
        self._numbers = [float(n) for n in analysis.numbers]
        self._number_i = 0
        self._text: str | None = None

    # -- entry point
    def value(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        if not isinstance(schema, dict):
            return self._string(name, {})
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
            return self._pick_enum(schema["enum"], name)
        if "allOf" in schema and isinstance(schema["allOf"], list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for raw in schema["allOf"]:
                part = self._resolve(raw) if isinstance(raw, dict) else {}
                for key, val in part.items():
                    if key == "properties" and "properties" in merged:
                        merged["properties"] = {**merged["properties"], **val}
                    elif key == "required" and "required" in merged:
                        merged["required"] = [*merged["required"], *val]
                    else:
                        merged.setdefault(key, val)
            return self.value(merged, name, depth)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.value(self._choose_option(options, depth), name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [t for t in kind if t != "null"]
            kind = non_null[0] if non_null and depth < _MAX_DEPTH else "null"
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                kind = "string"
        if depth >= _MAX_DEPTH and kind in ("object", "array"):
            return {} if kind == "object" else []
        handler = {
            "object": self._object,
            "array": self._array,
            "string": self._string_schema,
            "integer": self._integer,
            "number": self._number,
            "boolean": self._boolean,
            "null": self._null,
        }.get(kind, self._string_schema)
        return handler(schema, name, depth)

    # -- helpers
    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 20:
            ref = schema["$ref"]
            target: Any = None
            if isinstance(ref, str) and ref.startswith("#"):
                target = self.root
                for raw in ref.lstrip("#").strip("/").split("/"):
                    if not raw:
                        continue
                    part = raw.replace("~1", "/").replace("~0", "~")
                    target = target.get(part) if isinstance(target, dict) else None
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else rest
            seen += 1
        return schema

    def _choose_option(self, options: list[Any], depth: int) -> Any:
        def is_null(option: Any) -> bool:
            option = self._resolve(option) if isinstance(option, dict) else option
            return isinstance(option, dict) and option.get("type") == "null"

        real = [o for o in options if not is_null(o)]
        if not real:
            return options[0]
        if len(real) < len(options) and depth >= _OPTIONAL_DEPTH:
            return {"type": "null"}  # deep Optional fields (often recursive) stay empty
        return real[0]

    def _pick_enum(self, values: list[Any], name: str) -> Any:
        words = {w.lower() for w in self.a.keywords} | {
            w.lower() for w in re.findall(r"\w+", self.a.text)
        }
        for value in values:
            if isinstance(value, str) and value.lower() in words:
                return value
        return values[self.rng.randrange(len(values))]

    def _object(self, schema: dict[str, Any], name: str, depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        if not isinstance(props, dict):
            props = {}
        required = schema.get("required")
        required = set(required) if isinstance(required, list) else set(props)
        result: dict[str, Any] = {}
        for key, sub in props.items():
            # fields that are not required are filled too, near the top
            if key in required or depth < _OPTIONAL_DEPTH:
                result[key] = self.value(sub, key, depth + 1)
        min_props = self._limit(schema, "minProperties", MAX_PROPERTIES, name)
        extra = schema.get("additionalProperties")
        if isinstance(min_props, int) and len(result) < min_props and extra is not False:
            sub = extra if isinstance(extra, dict) else {"type": "string"}
            for i, kw in enumerate(self._words_list(min_props - len(result))):
                result.setdefault(kw.lower() or f"key{i}", self.value(sub, kw, depth + 1))
        return result

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        items = schema.get("items", {})
        lo = self._limit(schema, "minItems", MAX_ITEMS, name) or 0
        hi = schema.get("maxItems")
        lo = lo if lo >= 0 else 0
        want = self.a.quantity or (len(self.a.keywords) if _is_word_list(name) else 3)
        want = max(lo, min(want, 5))
        if isinstance(hi, int):
            want = min(want, hi)
        item_schema = self._resolve(items) if isinstance(items, dict) else {}
        if (
            _is_word_list(name)
            and item_schema.get("type", "string") == "string"
            and ("enum" not in item_schema)
        ):
            words = self._words_list(want)
            return [self._fit_string(w, item_schema, name) for w in words]
        if isinstance(schema.get("prefixItems"), list):
            return [self.value(s, name, depth + 1) for s in schema["prefixItems"]]
        values = [self.value(items, _singular(name), depth + 1) for _ in range(want)]
        if all(isinstance(v, str) for v in values) and len(set(values)) < len(values):
            values = self._distinct(values, name, item_schema)
        if schema.get("uniqueItems"):
            unique: list[Any] = []
            for v in values:
                if v not in unique:
                    unique.append(v)
            values = unique if len(unique) >= lo else values
        return values

    def _distinct(self, values: list[str], name: str, schema: dict[str, Any]) -> list[str]:
        """As many different strings as ``values`` for a list called ``name``."""
        low = name.lower()
        subject = self.a.topic
        if "ingredient" in low:
            candidates = [subject, *INGREDIENTS]
        elif any(word in low for word in ("step", "instruction", "direction")):
            candidates = [f"Prepare the {subject}.", *STEPS]
        else:
            candidates = [values[0], *self.a.keywords, *re.findall(r"[A-Za-z]{4,}", self.a.text)]
            candidates += [f"{values[0]} {k}" for k in range(2, len(values) + 2)]
        seen: dict[str, None] = {}
        for text in candidates:
            fitted = self._fit_string(text, schema, name)
            if fitted.lower() not in {s.lower() for s in seen}:
                seen[fitted] = None
            if len(seen) == len(values):
                break
        return list(seen) if len(seen) == len(values) else values

    def _words_list(self, n: int) -> list[str]:
        words = list(self.a.keywords) or ["chainkit"]
        extra = [w for w in re.findall(r"[A-Za-z]{4,}", self.a.text) if w not in words]
        words = list(dict.fromkeys([*words, *extra]))
        while len(words) < n:
            words.append(f"{words[len(words) % max(1, len(words))]} {len(words)}")
        return words[:n]

    def _string_schema(self, schema: dict[str, Any], name: str, depth: int) -> str:
        return self._string(name, schema)

    def _string(self, name: str, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt == "date":
            return "2024-05-17"
        if fmt == "date-time":
            return "2024-05-17T10:30:00Z"
        if fmt == "time":
            return "10:30:00"
        if fmt == "email":
            return "alex@example.com"
        if fmt in ("uri", "url"):
            return "https://example.com/" + "-".join(w.lower() for w in self.a.keywords[:3])
        if fmt == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        key = name.lower()
        if key in ("title", "headline", "heading", "subject", "topic", "theme"):
            text = self.a.title if key != "topic" else self.a.topic
        elif key in ("name", "full_name", "author", "person", "character", "username") or (
            key.endswith("_name")
        ):
            quoted = _QUOTED_RE.search(self.a.text)
            proper = list(re.findall(r"\b[A-Z][a-z]+\b", self.a.text)[1:])
            text = " ".join(proper[:2]) if proper else self.rng.choice(_SENTINEL_NAMES)
            if quoted:
                text = quoted.group(1)
        elif key in ("setup", "question"):
            text = f"Why did {self.a.topic} cross the road?"
        elif key == "punchline":
            text = f"To get to the other side of {self.a.topic}!"
        elif key in ("language", "lang"):
            text = "English"
        elif key in ("sentiment", "tone", "mood"):
            text = "positive"
        elif key in ("keyword", "tag", "label", "word", "term", "category"):
            text = self.a.keywords[0] if self.a.keywords else self.a.topic
        elif any(field in key for field in _TEXT_FIELDS):
            text = self._sentence()
        elif key.endswith(("city", "location", "place")):
            proper = re.findall(r"\b[A-Z][a-z]+\b", self.a.text)[1:]
            text = proper[0] if proper else "Paris"
        else:
            text = self.a.topic
        return self._fit_string(text, schema, name)

    def _sentence(self) -> str:
        if self._text is None:
            self._text = write(self.a, Rng(self.rng.getrandbits(64)))
        return self._text

    def _limit(self, schema: dict[str, Any], keyword: str, limit: int, name: str) -> int | None:
        """``schema[keyword]`` as an int, or a 400 when above ``limit``."""
        value = schema.get(keyword)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        if value > limit:
            where = f" (property {name!r})" if name else ""
            raise BadRequest(
                f"Invalid schema for {self.param}: '{keyword}' is {value}{where}; the local "
                f"model writes at most {limit}. Lower it.",
                param=self.param,
                code="invalid_value",
            )
        return value

    def _fit_string(self, text: str, schema: dict[str, Any], name: str = "") -> str:
        lo = self._limit(schema, "minLength", MAX_STRING, name)
        hi = schema.get("maxLength")
        if isinstance(hi, int) and len(text) > hi:
            text = text[:hi].rstrip() if hi > 0 else ""
        if isinstance(lo, int) and len(text) < lo:
            text = (text + " " + self.a.topic * lo)[:lo] if lo > 0 else text
            text = text.ljust(lo, ".")
        self._chars += len(text)
        if self._chars > MAX_VALUE_CHARS:
            raise BadRequest(
                f"Invalid schema for {self.param}: its answer would exceed "
                f"{MAX_VALUE_CHARS} characters (many or long strings). Ask for less.",
                param=self.param,
                code="invalid_value",
            )
        return text

    def _integer(self, schema: dict[str, Any], name: str, depth: int) -> int:
        value = self._numeric(schema, name, integer=True)
        if not -_INT64 <= value <= _INT64:
            where = f" for property {name!r}" if name else ""
            raise BadRequest(
                f"Invalid schema for {self.param}: no 64-bit integer fits its bounds{where} "
                f"(minimum/maximum/multipleOf). Use smaller numbers.",
                param=self.param,
                code="invalid_value",
            )
        return int(value)

    def _number(self, schema: dict[str, Any], name: str, depth: int) -> float:
        return float(self._numeric(schema, name, integer=False))

    def _numeric(self, schema: dict[str, Any], name: str, *, integer: bool) -> float:
        lo = schema.get("minimum")
        hi = schema.get("maximum")
        xlo = schema.get("exclusiveMinimum")
        xhi = schema.get("exclusiveMaximum")
        step = 1 if integer else 0.01
        if isinstance(xlo, int | float) and not isinstance(xlo, bool):
            lo = max(lo, xlo + step) if isinstance(lo, int | float) else xlo + step
        if isinstance(xhi, int | float) and not isinstance(xhi, bool):
            hi = min(hi, xhi - step) if isinstance(hi, int | float) else xhi - step
        value: float
        if self._number_i < len(self._numbers):
            value = self._numbers[self._number_i]
            self._number_i += 1
        elif name.lower() in ("rating", "score", "stars"):
            value = 4 if not isinstance(hi, int | float) or hi >= 5 else hi
        elif name.lower() in ("year",):
            value = 2024
        elif name.lower() in ("confidence", "probability"):
            value = 0.9
        else:
            value = self.rng.randint(1, 10)
        if isinstance(lo, int | float) and value < lo:
            value = lo
        if isinstance(hi, int | float) and value > hi:
            value = hi
        if integer:
            value = math.ceil(value) if isinstance(lo, int | float) and value < lo + 1 else value
            value = float(round(value))
            if isinstance(hi, int | float) and value > hi:
                value = float(math.floor(hi))
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and not isinstance(multiple, bool) and multiple > 0:
            steps = value / multiple
            if math.isfinite(steps) and abs(steps) < 2**53:  # else every float is a multiple
                value = math.ceil(steps) * multiple
        if not math.isfinite(value):
            raise BadRequest(
                f"Invalid schema for {self.param}: no finite number fits the bounds of "
                f"{name or 'a number'!r}. Use smaller numbers.",
                param=self.param,
                code="invalid_value",
            )
        return value

    def _null(self, schema: dict[str, Any], name: str, depth: int) -> None:
        return None

    def _boolean(self, schema: dict[str, Any], name: str, depth: int) -> bool:
        return self.rng.random() < 0.5


def _is_word_list(name: str) -> bool:
    return name.lower() in _LIST_OF_WORDS


def _singular(name: str) -> str:
    low = name.lower()
    if low.endswith("ies"):
        return name[:-3] + "y"
    if low.endswith("s") and not low.endswith("ss"):
        return name[:-1]
    return name


def json_object(analysis: Analysis, rng: random.Random) -> dict[str, Any]:
    """A reasonable JSON object for ``json_object`` mode (no schema given)."""
    keys = re.findall(r"[\"'`](\w+)[\"'`]", analysis.text)
    if keys:
        gen = SchemaValues({}, analysis, rng)
        return {k: gen.value({"type": "string"}, k) for k in dict.fromkeys(keys)}
    return {
        "topic": analysis.topic,
        "title": title_case(analysis.topic),
        "answer": write(analysis, rng),
        "keywords": list(analysis.keywords),
    }
