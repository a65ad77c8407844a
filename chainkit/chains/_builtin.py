"""The built-in chains: small functions that each return a Runnable.

Each takes ``model`` (a spec string, a model object, or ``None`` for
``load_model()``) and returns a named chain; :mod:`chainkit.chains._registry`
registers them by name with their descriptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough, RunnableSequence
from pydantic import BaseModel, Field

from chainkit.chains._make import build_chain, input_model, resolve_model

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel

__all__ = [
    "BUILTIN_CHAINS",
    "Extraction",
    "explain",
    "extract",
    "fact",
    "haiku",
    "outline_story",
    "song",
    "story",
    "summarize",
]

ModelArg: TypeAlias = "str | BaseLanguageModel[Any] | Runnable[Any, Any] | None"

SONG = "Write me a 1 verse song about {topic}."
STORY = "Write a short story about {topic}."
FACT = "Tell me a fact about number {n}"
EXPLAIN = "Explain {subject} in simple terms."
HAIKU = "Write a haiku about {topic}."
SUMMARIZE = "Summarize the following text in two or three sentences.\n\n{text}"
EXTRACT = (
    "Extract a short title, a few keywords and the overall sentiment "
    "(positive, neutral or negative) of the following text.\n\n{text}"
)
OUTLINE = "Write an outline of three to five bullet points for a short story about {topic}."
TITLE = (
    "Write a title for a short story about {topic} that follows this outline:\n\n{outline}"
    "\n\nAnswer with the title only."
)
STORY_FROM_OUTLINE = "Write a short story about {topic} that follows this outline:\n\n{outline}"


class Extraction(BaseModel):
    """What the ``extract`` chain returns: a title, keywords and the sentiment of a text."""

    title: str = Field(description="A short title for the text.")
    keywords: list[str] = Field(description="A few keywords of the text, most important first.")
    sentiment: Literal["positive", "neutral", "negative"] = Field(
        description="The overall sentiment of the text."
    )


def _text_chain(name: str, template: str, model: ModelArg) -> Runnable[dict[str, Any], str]:
    return build_chain(
        template, model=model, parser="str", name=name, description=DESCRIPTIONS[name]
    )


def song(model: ModelArg = None) -> Runnable[dict[str, Any], str]:
    """A one-verse song about ``topic`` (the first seed's prompt)."""
    return _text_chain("song", SONG, model)


def story(model: ModelArg = None) -> Runnable[dict[str, Any], str]:
    """A short story about ``topic`` (the second seed's prompt)."""
    return _text_chain("story", STORY, model)


def fact(model: ModelArg = None) -> Runnable[dict[str, Any], str]:
    """A fact about the number ``n`` (the second seed's batching prompt)."""
    return _text_chain("fact", FACT, model)


def explain(model: ModelArg = None) -> Runnable[dict[str, Any], str]:
    """``subject`` explained in simple terms."""
    return _text_chain("explain", EXPLAIN, model)


def haiku(model: ModelArg = None) -> Runnable[dict[str, Any], str]:
    """A haiku about ``topic``."""
    return _text_chain("haiku", HAIKU, model)


def summarize(model: ModelArg = None) -> Runnable[dict[str, Any], str]:
    """A summary of ``text`` in two or three sentences."""
    return _text_chain("summarize", SUMMARIZE, model)


def extract(model: ModelArg = None) -> Runnable[dict[str, Any], Extraction]:
    """An :class:`Extraction` (title, keywords, sentiment) of ``text``, as structured output."""
    return build_chain(
        EXTRACT, model=model, parser=Extraction, name="extract", description=DESCRIPTIONS["extract"]
    )


def outline_story(model: ModelArg = None) -> Runnable[dict[str, Any], dict[str, Any]]:
    """A story about ``topic`` in steps, so its event stream has depth.

    1. an ``outline`` of the story;
    2. in parallel, from the outline: the ``story`` and its ``title``
       (a ``RunnableParallel`` inside ``RunnablePassthrough.assign``);
    3. the story's ``word_count``.

    Returns ``{"topic", "outline", "title", "story", "word_count"}``.

    When a step fails during ``astream``/``astream_events`` (a missing variable, a
    model error), the error reaches the caller as usual, but LangChain's
    ``RunnableParallel`` streaming leaves the other branches' tasks unretrieved,
    so asyncio may log "Task exception was never retrieved" for them.
    """
    name = "outline_story"
    llm = resolve_model(model)  # one model object for every step
    outline = build_chain(OUTLINE, model=llm, parser="str", name="outline", error_name=name)
    # the outline comes from the first step: a missing-variable error names only `topic`
    title, written = (
        build_chain(
            template, model=llm, parser="str", name=step, error_name=name, produced=["outline"]
        )
        for template, step in ((TITLE, "title"), (STORY_FROM_OUTLINE, "story"))
    )
    word_count = RunnableLambda(_word_count, afunc=_aword_count, name="word_count")
    sequence: RunnableSequence[dict[str, Any], dict[str, Any]] = RunnableSequence(
        RunnablePassthrough.assign(outline=outline),
        RunnablePassthrough.assign(story=written, title=title),
        RunnablePassthrough.assign(word_count=word_count),
        name=name,
    )
    schema = input_model(
        name, cast("type[BaseModel]", outline.get_input_schema()), DESCRIPTIONS[name]
    )
    return sequence.with_config(run_name=name).with_types(input_type=cast("Any", schema))


def _word_count(data: dict[str, Any]) -> int:
    # .get: when an earlier step fails mid-stream, LangChain may still call this
    # with what arrived; the stream raises the earlier step's error anyway.
    return len(str(data.get("story", "")).split())


async def _aword_count(data: dict[str, Any]) -> int:
    return _word_count(data)


DESCRIPTIONS = {
    "song": "A one-verse song about {topic}.",
    "story": "A short story about {topic}.",
    "fact": "A fact about the number {n}.",
    "explain": "{subject} explained in simple terms.",
    "haiku": "A haiku about {topic}.",
    "summarize": "A summary of {text} in two or three sentences.",
    "extract": "Title, keywords and sentiment of {text}, as structured output (Extraction).",
    "outline_story": "A story about {topic} in steps: an outline, then the story and "
    "its title in parallel.",
}


def _steps(**templates: str) -> str:
    """The templates of a chain's steps as ``name: text``, later lines indented under it."""
    lines = []
    for name, text in templates.items():
        first, *rest = text.splitlines()
        lines.append(f"{name}: {first}")
        lines.extend(f"  {line}" if line else "" for line in rest)
    return "\n".join(lines)


TEMPLATES = {
    "song": SONG,
    "story": STORY,
    "fact": FACT,
    "explain": EXPLAIN,
    "haiku": HAIKU,
    "summarize": SUMMARIZE,
    "extract": EXTRACT,
    "outline_story": _steps(outline=OUTLINE, title=TITLE, story=STORY_FROM_OUTLINE),
}

PARSERS = dict.fromkeys(TEMPLATES, "str") | {
    "extract": "pydantic:Extraction",
    "outline_story": "dict",
}

BUILTIN_CHAINS = {
    "song": song,
    "story": story,
    "fact": fact,
    "explain": explain,
    "haiku": haiku,
    "summarize": summarize,
    "extract": extract,
    "outline_story": outline_story,
}
