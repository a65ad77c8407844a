"""Answers shaped by the instruction: titles, slogans, story outlines, recipes, yes/no,
labels, code and extractions; :func:`write` picks the writer for a prompt's kind.

The kinds themselves are read in :mod:`._analysis` (:func:`analyse`); this module adds
the writers whose answer must look like what was asked: a title is a few words, a
slogan one short line, a story outline numbered points, a recipe distinct
ingredients and steps, a yes/no question or a classification a label, a code
request a code block, an extraction the values copied from the text (quoted and
non-ASCII names kept as written).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from chainkit.models.local import _text, _tokens
from chainkit.models.local._analysis import STOP_WORDS, Analysis, title_case

__all__ = ["INGREDIENTS", "STEPS", "quoted_values", "write"]

# a value given in quotes ('...', "...", “...”, 「...」), kept as written (any script)
_QUOTED_RE = re.compile(
    "(?:^|(?<=[\\s(:]))['\"\u201c\u300c]([^'\"\u201d\u300d\\n]{1,80})['\"\u201d\u300d](?!\\w)"
)
_CLAUSE_RE = re.compile(r"\s+(?:that|which|who|where|following|in|with)\b.*$", re.I)
_POSITIVE = frozenset((
    "love", "loved", "loves", "great", "good", "excellent", "amazing", "happy", "wonderful",
    "best", "enjoyed", "like", "liked", "fantastic", "delicious", "perfect", "nice", "glad",
))  # fmt: skip
_NEGATIVE = frozenset((
    "hate", "hated", "bad", "terrible", "awful", "worst", "poor", "boring", "disappointed",
    "disappointing", "broken", "sad", "angry", "slow", "rude", "dirty", "never", "ugly",
))  # fmt: skip
INGREDIENTS = (
    "2 cups flour", "1/2 cup sugar", "2 eggs", "100 g butter", "1 pinch of salt",
    "1 tsp cinnamon", "1 cup milk", "1 tsp vanilla",
)  # fmt: skip
STEPS = (
    "Preheat the oven to 180 C.",
    "Mix the dry ingredients, then stir in the rest.",
    "Bake for 35 minutes, until golden.",
    "Let it cool before serving.",
)
_LANGUAGES = ("python", "javascript", "typescript", "sql", "bash", "rust", "go", "java")


def write(analysis: Analysis, rng: random.Random) -> str:
    """Text answering ``analysis``; ``rng`` picks among templates."""
    writer = _WRITERS.get(analysis.kind)
    if writer is None:
        return _text.write(analysis, rng)
    return writer(analysis, rng).strip()


def quoted_values(text: str) -> list[str]:
    """Values written in quotes in ``text``, in order, as written."""
    return [m.group(1) for m in _QUOTED_RE.finditer(text)]


def _subject(a: Analysis) -> str:
    """The topic without trailing clauses ("a lighthouse that follows ..." -> "lighthouse")."""
    topic = _CLAUSE_RE.sub("", a.topic).strip() or a.topic
    words = [w for w in topic.split() if w.lower() not in ("a", "an", "the")]
    return " ".join(words[:5]) or "this"


def _write_title(a: Analysis, rng: random.Random) -> str:
    subject = title_case(_subject(a))
    return rng.choice(
        (f"The {subject}", f"{subject}", f"A Tale of the {subject}", f"Beyond the {subject}")
    )


def _write_slogan(a: Analysis, rng: random.Random) -> str:
    subject = _subject(a)
    cap = subject[:1].upper() + subject[1:]
    return rng.choice(
        (
            f"{cap}: pure joy in every sip!",
            f"Life is better with {subject}.",
            f"Fresh {subject}, happy you!",
            f"{cap}. Simply the best.",
        )
    )


def _write_story_outline(a: Analysis, rng: random.Random) -> str:
    subject = _subject(a)
    count = max(3, min(a.quantity or 4, 5))
    points = [
        f"Introduce the {subject} and the quiet life around it.",
        f"A strange event disturbs the {subject} one stormy night.",
        "The hero searches for the cause and meets an unlikely friend.",
        f"Everything is at stake when the {subject} is nearly lost.",
        f"The danger passes, and the {subject} shines again.",
    ]
    if count < 5:
        points = [*points[: count - 1], points[-1]]
    return "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))


def _write_recipe(a: Analysis, rng: random.Random) -> str:
    subject = _subject(a)
    main = f"3 {subject}" if subject.endswith("s") else f"2 cups {subject}"
    ingredients = [main, *rng.sample(INGREDIENTS, 4)]
    steps = [f"Prepare the {subject}.", *STEPS]
    return (
        f"{title_case(subject)} Recipe\n\nIngredients:\n"
        + "\n".join(f"- {item}" for item in ingredients)
        + "\n\nSteps:\n"
        + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    )


def _write_yes_no(a: Analysis, rng: random.Random) -> str:
    words = set(re.findall(r"[a-z]+", a.text.lower()))
    if words & {"not", "never", "impossible"}:
        return "No."
    return "Yes." if _tokens.stable_seed("yes", a.topic) % 4 else "No."


def _write_label(a: Analysis, rng: random.Random) -> str:
    source = a.source or a.text
    words = set(re.findall(r"[a-z]+", source.lower()))
    labels = _labels(a.text)
    mood = (
        "positive"
        if len(words & _POSITIVE) > len(words & _NEGATIVE)
        else "negative"
        if words & _NEGATIVE
        else "neutral"
    )
    if not labels:
        return mood
    for label in labels:
        if label.lower() == mood:
            return label
    for label in labels:  # a label the text itself uses
        if label.lower() in words:
            return label
    return labels[_tokens.stable_seed("label", source) % len(labels)]


def _labels(text: str) -> list[str]:
    """The labels an instruction offers ("as positive, negative or neutral")."""
    match = re.search(
        r"\b(?:as|into|one of|either|categories|labels?)\s*:?\s+"
        r"([\w'-]+(?:\s*(?:,|/|\bor\b)\s*[\w'-]+)+)",
        text,
        re.I,
    )
    if not match:
        return []
    parts = re.split(r"\s*(?:,|/|\bor\b)\s*", match.group(1))
    return [p for p in parts if p and p.lower() not in ("and", "or")]


def _write_code(a: Analysis, rng: random.Random) -> str:
    low = a.text.lower()
    language = next((lang for lang in _LANGUAGES if re.search(rf"\b{lang}\b", low)), "python")
    words = [w.lower() for w in a.keywords if w.lower() not in STOP_WORDS]
    words = [w for w in words if w not in (*_LANGUAGES, "function", "code", "script", "program")]
    name = "_".join(words[:3]) or "solve"
    reverse = "revers" in low
    if language == "python":
        body = "return value[::-1]" if reverse else "return value"
        code = f'def {name}(value):\n    """{a.text.strip()[:70]}"""\n    {body}\n'
    elif language in ("javascript", "typescript"):
        body = "return [...value].reverse().join('');" if reverse else "return value;"
        camel = words[0] + "".join(w.title() for w in words[1:3]) if words else "solve"
        code = f"function {camel}(value) {{\n  {body}\n}}\n"
    elif language == "sql":
        code = f"SELECT *\nFROM {words[0] if words else 'items'}\nLIMIT 10;\n"
    else:
        code = f"# {a.text.strip()[:70]}\necho {name}\n"
    return f"Here is the code:\n\n```{language}\n{code}```"


def _write_extract(a: Analysis, rng: random.Random) -> str:
    source = a.source or a.text
    quoted = quoted_values(source)
    if quoted:
        return ", ".join(dict.fromkeys(quoted))
    low = a.text.lower()
    if "email" in low:
        found = re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", source)
        if found:
            return ", ".join(found)
    if re.search(r"\b(number|amount|price|date|year|age)s?\b", low):
        found = re.findall(r"\d[\d,.:/-]*", source)
        if found:
            return ", ".join(found)
    text = source.split(":", 1)[1] if ":" in source else source
    names = re.findall(r"\b[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*", text)
    names = [n for n in names if n.lower() not in STOP_WORDS]
    return ", ".join(dict.fromkeys(names)) or _subject(a)


_WRITERS: dict[str, Callable[[Analysis, random.Random], str]] = {
    "title": _write_title,
    "slogan": _write_slogan,
    "story_outline": _write_story_outline,
    "recipe": _write_recipe,
    "yesno": _write_yes_no,
    "classify": _write_label,
    "code": _write_code,
    "extract": _write_extract,
}
