"""Reusable LCEL chains: ``make_chain``, the built-in chains, spec files, a registry.

>>> from chainkit.chains import get_chain, make_chain
>>> song = get_chain("song")                                  # a built-in, on load_model()
>>> song.invoke({"topic": "sparkling water"})                 # doctest: +SKIP
>>> haiku = make_chain("Write a haiku about {topic}.", name="haiku", model="local")

Every chain is a plain LangChain ``Runnable`` (``prompt | model | parser``) with
a run name, an input schema listing its template variables, and typed errors
for missing variables. Chains described in TOML spec files are found in
``--chains-dir`` / ``$CHAINKIT_CHAINS_DIR`` (see :mod:`chainkit.chains._specs`
for the format).
"""

from __future__ import annotations

from chainkit.chains._builtin import (
    Extraction,
    explain,
    extract,
    fact,
    haiku,
    outline_story,
    song,
    story,
    summarize,
)
from chainkit.chains._make import make_chain, stock_chain
from chainkit.chains._parsers import (
    InlineJsonOutputParser,
    InlinePydanticOutputParser,
    InlineStrOutputParser,
)
from chainkit.chains._prompt import ChainPromptTemplate
from chainkit.chains._registry import (
    ChainFactory,
    ChainInfo,
    get_chain,
    get_chain_info,
    list_chains,
    register_chain,
    spec_chain,
    unregister_chain,
)
from chainkit.chains._specs import CHAINS_DIR_ENV, ChainSpec, load_spec, load_specs

__all__ = [
    "CHAINS_DIR_ENV",
    "ChainFactory",
    "ChainInfo",
    "ChainPromptTemplate",
    "ChainSpec",
    "Extraction",
    "InlineJsonOutputParser",
    "InlinePydanticOutputParser",
    "InlineStrOutputParser",
    "explain",
    "extract",
    "fact",
    "get_chain",
    "get_chain_info",
    "haiku",
    "list_chains",
    "load_spec",
    "load_specs",
    "make_chain",
    "outline_story",
    "register_chain",
    "song",
    "spec_chain",
    "stock_chain",
    "story",
    "summarize",
    "unregister_chain",
]
