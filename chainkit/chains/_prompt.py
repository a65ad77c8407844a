"""The prompt step of chainkit's chains: a ``ChatPromptTemplate`` that names what is missing.

LangChain's prompt raises a bare ``KeyError`` listing the missing variables.
:class:`ChainPromptTemplate` overrides only that check, so a missing variable
raises :class:`~chainkit.errors.MissingVariableError` naming the variable and
the chain, on every call style (invoke, ainvoke, stream, astream, batch, abatch
and astream_events all format the prompt through the same check), without an
extra run in the event stream: the error is the prompt run's own error.
``MissingVariableError`` is a ``KeyError``, so code that caught LangChain's
error keeps working.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from langchain_core.prompts import (
    BasePromptTemplate,
    ChatPromptTemplate,
    HumanMessagePromptTemplate,
    StringPromptTemplate,
)

from chainkit._compat import private_override
from chainkit.errors import MissingVariableError, UserError

__all__ = ["ChainPromptTemplate", "to_chat_prompt"]


class ChainPromptTemplate(ChatPromptTemplate):
    """A ``ChatPromptTemplate`` whose missing-variable error names the chain.

    Its run name stays ``ChatPromptTemplate``, so events read as in a plain LCEL chain.
    """

    chain_name: str = ""
    """The chain named in a :class:`MissingVariableError`."""

    produced: builtins.list[str] = []  # noqa: RUF012 - a pydantic field (copied per instance)
    """Variables an earlier step of the chain produces (``outline_story``'s ``outline``).

    While one of the caller's variables is missing too, the error names only the
    caller's: which step fails first is a race when steps stream into each other.
    """

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False  # LangChain's `load` would not find this class; dump the chain's spec instead

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return super().get_name(suffix, name=name or self.name or "ChatPromptTemplate")

    @private_override(BasePromptTemplate, "_validate_input", "prompt_validate_input")
    def _validate_input(self, inner_input: Any) -> builtins.dict[str, Any]:
        if isinstance(inner_input, dict):
            missing = [v for v in self.input_variables if v not in inner_input]
            if missing:
                callers = [v for v in missing if v not in self.produced]
                raise MissingVariableError(
                    self.chain_name or "<unnamed>", callers or missing, inner_input
                )
        return super()._validate_input(inner_input)

    @classmethod
    def wrap(
        cls, prompt: ChatPromptTemplate, chain_name: str, produced: Iterable[str] = ()
    ) -> ChainPromptTemplate:
        """The same prompt (messages, partials, types), as a ``ChainPromptTemplate``."""
        fields = {name: getattr(prompt, name) for name in type(prompt).model_fields}
        fields["chain_name"] = chain_name
        fields["produced"] = list(produced)
        return cls.model_construct(
            _fields_set={*prompt.model_fields_set, "chain_name", "produced"}, **fields
        )


def to_chat_prompt(
    template: str | BasePromptTemplate[Any],
    *,
    system: str | None = None,
    template_format: str = "f-string",
) -> ChatPromptTemplate:
    """A ``ChatPromptTemplate`` from template text or a prompt template.

    Text becomes one human message; a string prompt template (``PromptTemplate``)
    becomes the human message it describes; ``system`` is prepended as a system
    message in the same template format.
    """
    if template_format == "jinja2":
        raise UserError(
            "jinja2 templates are refused: they can run code; use an f-string "
            "('{topic}') or mustache ('{{topic}}') template"
        )
    if isinstance(template, str):
        prompt = ChatPromptTemplate.from_messages(
            [("human", template)],
            template_format=template_format,  # type: ignore[arg-type]
        )
    elif isinstance(template, ChatPromptTemplate):
        prompt = template
    elif isinstance(template, StringPromptTemplate):
        message = HumanMessagePromptTemplate(prompt=template)
        prompt = ChatPromptTemplate.from_messages([message])
        if template.partial_variables:
            prompt = prompt.partial(**template.partial_variables)
    else:
        raise UserError(
            f"make_chain takes template text, a ChatPromptTemplate or a PromptTemplate, "
            f"got {type(template).__name__}; wrap other prompts in a ChatPromptTemplate"
        )
    if system is not None:
        head = ChatPromptTemplate.from_messages(
            [("system", system)],
            template_format=template_format,  # type: ignore[arg-type]
        )
        prompt = head + prompt
    return prompt
