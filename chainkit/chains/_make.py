"""``make_chain``: prompt | model | parser, named, with a readable input schema."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableSequence
from pydantic import BaseModel, create_model

from chainkit.chains._parsers import (
    InlineJsonOutputParser,
    InlinePydanticOutputParser,
    InlineStrOutputParser,
)
from chainkit.chains._prompt import ChainPromptTemplate, to_chat_prompt
from chainkit.errors import UserError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel

__all__ = [
    "build_chain",
    "input_model",
    "make_chain",
    "parser_kind",
    "resolve_model",
    "stock_chain",
]

DEFAULT_CHAIN_NAME = "chain"
FORMAT_INSTRUCTIONS = "format_instructions"
JSON_INSTRUCTIONS = "Return a JSON object."  # OpenAI's JSON mode needs the word in the prompt


def resolve_model(
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None,
) -> Runnable[Any, Any]:
    """The model for a spec string (``load_model(spec)``), ``None`` (``load_model()``) or itself."""
    if model is None or isinstance(model, str):
        from chainkit.models import load_model

        return load_model(model)
    if isinstance(model, Runnable):
        return model
    raise UserError(
        f"model must be a model spec such as 'local' or a LangChain model, "
        f"got {type(model).__name__}"
    )


def parser_kind(parser: object) -> str:
    """A short description of a ``parser`` argument: ``str``, ``json``, ``pydantic:Name``, ..."""
    if isinstance(parser, str):
        return parser
    if isinstance(parser, type) and issubclass(parser, BaseModel):
        return f"pydantic:{parser.__name__}"
    if isinstance(parser, Runnable):
        return f"runnable:{parser.get_name()}"
    return type(parser).__name__


def make_chain(
    template: str | BasePromptTemplate[Any],
    *,
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None = None,
    parser: Literal["str", "json"] | type[BaseModel] | Runnable[Any, Any] = "str",
    name: str | None = None,
    system: str | None = None,
    description: str | None = None,
    template_format: Literal["f-string", "mustache"] = "f-string",
    **partial: Any,
) -> Runnable[dict[str, Any], Any]:
    """Build ``prompt | model | parser`` as one named Runnable.

    Args:
        template: template text (an f-string such as ``"Write a haiku about {topic}."``,
            sent as the human message) or a LangChain prompt template
            (``ChatPromptTemplate`` or ``PromptTemplate``).
        model: a model spec (``"local"``, ``"openai:gpt-4o-mini"``) or a model object;
            default ``load_model()``, which follows ``CHAINKIT_MODEL``.
        parser: ``"str"`` (text, streamed chunk by chunk), ``"json"`` (a dict,
            streamed as growing partial objects), a pydantic model class (through
            ``model.with_structured_output(cls)`` where the model supports it,
            otherwise a pydantic parser with format instructions added to the prompt),
            or any Runnable applied to the model's output.
        name: the run name shown in ``astream_events``, callbacks and traces, and in
            :class:`~chainkit.errors.MissingVariableError` (default ``"chain"``).
        system: a system message put before the template.
        description: what the chain does; it becomes the input schema's description.
        template_format: ``"f-string"`` (default) or ``"mustache"``; ``"jinja2"`` is
            refused because a jinja2 template can run code.
        **partial: values for some template variables, fixed now (the rest are the
            chain's inputs).

    The ``"str"`` and ``"json"`` parsers parse on the event loop: LangChain's stock
    parsers hop to a thread pool for every chunk of an async stream. Their run
    names and events are those of the stock ``StrOutputParser``/``JsonOutputParser``.

    With ``parser="json"``, an OpenAI-compatible chat model is put in JSON mode
    (``response_format={"type": "json_object"}``), and "Return a JSON object." is
    added as a last message when the prompt does not mention JSON (OpenAI's JSON
    mode requires it). With a pydantic class, OpenAI-compatible chat models use
    tool calling (``method="function_calling"``): their ``json_schema`` method
    warns on every streamed call (langchain-ai/langchain#35538).

    The chain's input schema (``chain.get_input_jsonschema()``) lists the template
    variables; a missing one raises :class:`~chainkit.errors.MissingVariableError`
    naming it and the chain, for every call style.

    >>> chain = make_chain("Write a haiku about {topic}.", name="haiku")
    >>> chain.invoke({"topic": "the sea"})          # doctest: +SKIP
    """
    return build_chain(
        template,
        model=model,
        parser=parser,
        name=DEFAULT_CHAIN_NAME if name is None else name,
        system=system,
        description=description,
        template_format=template_format,
        partial=partial,
    )


def build_chain(
    template: str | BasePromptTemplate[Any],
    *,
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None,
    parser: Literal["str", "json"] | type[BaseModel] | Runnable[Any, Any],
    name: str,
    system: str | None = None,
    description: str | None = None,
    template_format: str = "f-string",
    partial: dict[str, Any] | None = None,
    error_name: str | None = None,
    produced: Iterable[str] = (),
) -> Runnable[dict[str, Any], Any]:
    """:func:`make_chain`, plus ``error_name``: the chain named in a missing-variable error.

    A step of a bigger chain (``outline_story``'s ``outline``) names the chain the
    caller called, not the step; ``produced`` are the variables earlier steps make,
    which such an error leaves out while a caller's variable is missing too.
    """
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"a chain name must be a non-empty string, got {name!r}")
    prompt = to_chat_prompt(template, system=system, template_format=template_format)
    partial = dict(partial or {})
    unknown = sorted(set(partial) - set(prompt.input_variables) - set(prompt.partial_variables))
    if unknown:
        raise UserError(
            f"chain {name!r}: {', '.join(map(repr, unknown))} "
            f"{'is' if len(unknown) == 1 else 'are'} not a variable of the template "
            f"(variables: {', '.join(prompt.input_variables) or 'none'})"
        )
    llm = resolve_model(model)
    steps: list[Runnable[Any, Any]]
    if parser == "str":
        steps = [llm, InlineStrOutputParser()]
    elif parser == "json":
        if "json" not in prompt.pretty_repr().lower():
            prompt = prompt + ChatPromptTemplate.from_messages([("human", JSON_INSTRUCTIONS)])
        steps = [_json_mode(llm), InlineJsonOutputParser()]
    elif isinstance(parser, type) and issubclass(parser, BaseModel):
        structured = _structured(llm, parser)
        if structured is not None:
            steps = [structured]
        else:
            fallback = InlinePydanticOutputParser(pydantic_object=parser)
            prompt = prompt + ChatPromptTemplate.from_messages(
                [("human", "{" + FORMAT_INSTRUCTIONS + "}")]
            )
            partial[FORMAT_INSTRUCTIONS] = fallback.get_format_instructions()
            steps = [llm, fallback]
    elif isinstance(parser, Runnable):
        steps = [llm, parser]
    else:
        raise UserError(
            f"chain {name!r}: parser must be 'str', 'json', a pydantic model class or a "
            f"Runnable, got {parser!r}"
        )
    if partial:
        prompt = prompt.partial(**partial)
    chain_prompt = ChainPromptTemplate.wrap(prompt, error_name or name, produced)
    sequence: RunnableSequence[Any, Any] = RunnableSequence(chain_prompt, *steps, name=name)
    defaults = {k: v for k, v in partial.items() if k != FORMAT_INSTRUCTIONS}
    input_type = input_model(name, chain_prompt.get_input_schema(), description, defaults)
    return sequence.with_config(run_name=name).with_types(input_type=cast("Any", input_type))


def _is_openai_chat(llm: Runnable[Any, Any]) -> bool:
    from langchain_openai.chat_models.base import BaseChatOpenAI

    return isinstance(llm, BaseChatOpenAI)


def _json_mode(llm: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """OpenAI-compatible chat models answer in JSON mode; others follow the prompt."""
    if _is_openai_chat(llm):
        return llm.bind(response_format={"type": "json_object"})
    return llm


def _structured(llm: Runnable[Any, Any], schema: type[BaseModel]) -> Runnable[Any, Any] | None:
    """``llm.with_structured_output(schema)``, or ``None`` when the model cannot do it.

    OpenAI-compatible chat models use tool calling: their ``json_schema`` method
    emits a pydantic serializer warning on every streamed call
    (langchain-ai/langchain#35538, fixed upstream for invoke only).
    """
    method = getattr(llm, "with_structured_output", None)
    if method is None:
        return None
    kwargs = {"method": "function_calling"} if _is_openai_chat(llm) else {}
    try:
        structured: Runnable[Any, Any] = method(schema, **kwargs)
    except NotImplementedError:
        return None
    return structured


def input_model(
    name: str,
    schema: type[BaseModel],
    description: str | None,
    defaults: dict[str, Any] | None = None,
) -> type[BaseModel]:
    """The chain's input schema, titled ``<Name>Input``: ``schema``'s fields plus
    the variables that have defaults (optional, an input value overrides them)."""
    title = "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name) if part)
    fields: dict[str, Any] = {
        key: (type(value) if isinstance(value, (str, int, float, bool)) else Any, value)
        for key, value in (defaults or {}).items()
    }
    model: type[BaseModel] = create_model(
        f"{title or 'Chain'}Input", __base__=schema, __doc__=description, **fields
    )
    return model


def stock_chain(
    template: str,
    *,
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None = None,
) -> Runnable[dict[str, Any], str]:
    """The plain LCEL chain ``ChatPromptTemplate | model | StrOutputParser()``: no chainkit parts.

    A baseline for comparisons (``benchmarks/capture_overhead.py``): same prompt
    and model as ``make_chain(template, model=model)``, stock LangChain parts.
    """
    prompt = ChatPromptTemplate.from_messages([("human", template)])
    chain: Runnable[dict[str, Any], str] = prompt | resolve_model(model) | StrOutputParser()
    return chain
