"""The local model's answers look like what the prompt asked for (issue 12's findings)."""

from __future__ import annotations

import re

import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from chainkit import get_chain, make_chain
from chainkit.models.local import LocalModelServer


@pytest.fixture
def chat(server: LocalModelServer) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, api_key="x", model="gpt-4o-mini", temperature=0)


def _ask(chat: ChatOpenAI, prompt: str) -> str:
    return str(chat.invoke(prompt).content)


def test_outline_story_gives_numbered_points_and_a_short_title(chat: ChatOpenAI) -> None:
    result = get_chain("outline_story", model=chat).invoke({"topic": "a lighthouse"})
    points = result["outline"].splitlines()
    assert 3 <= len(points) <= 5
    assert all(re.match(rf"{i}\. \S", p) for i, p in enumerate(points, 1))
    title = result["title"]
    assert "\n" not in title
    assert 1 <= len(title.split()) <= 6
    assert "lighthouse" in title.lower()
    assert len(result["story"].split()) > 3 * len(title.split())


def test_a_slogan_is_one_short_line(chat: ChatOpenAI) -> None:
    slogan = make_chain("Write a slogan about {product}.", model=chat).invoke(
        {"product": "lemonade"}
    )
    assert "\n" not in slogan
    assert len(slogan.split()) <= 8
    assert "lemonade" in slogan.lower()
    assert "question" not in slogan.lower()


def test_structured_recipe_lists_distinct_ingredients(chat: ChatOpenAI) -> None:
    class Recipe(BaseModel):
        title: str
        ingredients: list[str]

    recipe = make_chain("Give me a recipe with {fruit}.", model=chat, parser=Recipe).invoke(
        {"fruit": "apples"}
    )
    assert len(recipe.ingredients) >= 3
    assert len({i.lower() for i in recipe.ingredients}) == len(recipe.ingredients)
    assert any("apple" in i.lower() for i in recipe.ingredients)
    assert not any("recipe" in i.lower() for i in recipe.ingredients)


def test_a_recipe_in_text_has_ingredients_and_steps(chat: ChatOpenAI) -> None:
    text = _ask(chat, "Give me a recipe for apple pie.")
    items = re.findall(r"^- (.+)$", text, flags=re.M)
    assert len(items) == len(set(items)) >= 4
    assert re.search(r"^1\. ", text, flags=re.M)


def test_a_list_has_distinct_items(chat: ChatOpenAI) -> None:
    items = re.findall(r"^- (.+)$", _ask(chat, "List five fruits."), flags=re.M)
    assert len(items) == len(set(items)) == 5


def test_a_summary_is_shorter_than_its_input(chat: ChatOpenAI) -> None:
    text = (
        "The city council met on Tuesday to discuss the new park. Residents asked for more "
        "trees and a playground. The mayor promised a plan by spring. Several people also "
        "raised concerns about parking near the entrance. The meeting ended late."
    )
    summary = get_chain("summarize", model=chat).invoke({"text": text})
    assert 0 < len(summary) < len(text)


def test_extraction_copies_quoted_and_non_ascii_values(chat: ChatOpenAI) -> None:
    answer = _ask(chat, 'Extract the customer name from: Our new customer "你好" signed up.')
    assert answer == "你好"

    @tool
    def create_customer(customer_name: str) -> str:
        """Create a customer with this name."""
        return customer_name

    message = chat.bind_tools([create_customer]).invoke(
        'Create a customer named "你好" in the system.'
    )
    assert message.tool_calls[0]["args"]["customer_name"] == "你好"


@pytest.mark.parametrize(
    ("prompt", "labels"),
    [
        ("Is the sky blue? Answer yes or no.", {"Yes.", "No."}),
        (
            "Classify the sentiment of this review as positive, negative or neutral: I loved it!",
            {"positive"},
        ),
        ("Classify this ticket into billing, bug or feature: the app crashes.", None),
    ],
)
def test_yes_no_and_classification_answer_with_a_label(
    chat: ChatOpenAI, prompt: str, labels: set[str] | None
) -> None:
    answer = _ask(chat, prompt)
    assert answer in (labels or {"billing", "bug", "feature"})


def test_a_code_request_gets_a_code_block(chat: ChatOpenAI) -> None:
    answer = _ask(chat, "Write a Python function that reverses a string.")
    block = re.search(r"```python\n(.+?)```", answer, flags=re.S)
    assert block
    namespace: dict[str, object] = {}
    exec(block.group(1), namespace)  # noqa: S102 - the local model's own deterministic code
    function = next(v for k, v in namespace.items() if callable(v) and not k.startswith("__"))
    assert function("abc") == "cba"  # type: ignore[operator]
