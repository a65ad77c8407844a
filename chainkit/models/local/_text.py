"""The local model's writer: deterministic, prompt-aware text from templates.

:func:`write` answers what ``_analysis.analyse`` read in a prompt (its kind,
topic and key words) with text of a natural length, composed from the word
banks of ``_word_banks``, choosing with a seeded :class:`random.Random`
(``_tokens.Rng``), so the same request always gives the same words.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from fractions import Fraction

from chainkit.models.local._analysis import (
    MATH_RE,
    STOP_WORDS,
    Analysis,
    title_case,
    verse_count,
    words_in,
)
from chainkit.models.local._tokens import count_tokens
from chainkit.models.local._word_banks import (
    ADJECTIVES,
    CATEGORIES,
    CHARACTERS,
    FAMOUS_NUMBERS,
    KNOWLEDGE,
    PLAIN_STARTS,
    RHYMES,
    SETTINGS,
    TOPIC_STARTS,
)

__all__ = ["write"]


def write(analysis: Analysis, rng: random.Random, *, completion: bool = False) -> str:
    """Text answering ``analysis``; ``rng`` picks among templates."""
    writer = _WRITERS.get(analysis.kind, _write_answer)
    return writer(analysis, rng).strip()


def _write_verse(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a)
    low = a.text.lower()
    verses = []
    for _ in range(verse_count(low)):
        fam_a, fam_b = rng.sample(RHYMES, 2)
        ends_a = rng.sample(fam_a, 2)
        ends_b = rng.sample(fam_b, 2)
        starts = rng.sample(TOPIC_STARTS, 2)
        plains = rng.sample(PLAIN_STARTS, 2)
        lines = [
            f"{_fill(starts[0], topic)}, {ends_a[0]},",
            f"{plains[0]}, {ends_b[0]}.",
            f"{_fill(starts[1], topic)}, {ends_a[1]},",
            f"{plains[1]}, {ends_b[1]}.",
        ]
        verses.append("\n".join(_cap(line) for line in lines))
    if re.search(r"\bsongs?\b|\blyrics\b", low) and len(verses) == 1:
        return f"(Verse)\n{verses[0]}"
    return "\n\n".join(verses)


def _write_haiku(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a)
    first = rng.choice(("{Topic} at dawn", "Soft {topic}", "{Topic} in the rain", "Still {topic}"))
    second = rng.choice(
        (
            "a quiet light settles on the world",
            "small waves of silence drift across the day",
            "the wind carries a half-remembered song",
        )
    )
    third = rng.choice(("and the moment stays", "nothing else to say", "the evening listens"))
    return "\n".join((_fill(first, topic), _cap(second), _cap(third)))


def _write_story(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a, phrase=True)
    name, who, pronoun = rng.choice(CHARACTERS)
    setting = rng.choice(SETTINGS)
    adj = rng.choice(ADJECTIVES)
    possessive = "his" if pronoun == "he" else "her"
    p1 = [
        f"Once upon a time, {setting}, there lived {who} named {name}.",
        f"{name} had heard stories about {topic} for as long as {pronoun} could remember.",
        rng.choice(
            (
                f"Everyone said {topic} was only a legend, but {name} was not so sure.",
                f"Most people had stopped wondering about {topic}, but {name} never did.",
            )
        ),
    ]
    opening = rng.choice(
        (
            (
                f"One {adj} morning, {name} packed a small bag and set out to find {topic}.",
                f"Along the way, {pronoun} met a traveller who laughed at the whole idea.",
            ),
            (
                f"One evening, a {adj} letter arrived that mentioned {topic} by name.",
                f"The very next day, {name} set out, even though the road was long.",
            ),
        )
    )
    p2 = [
        *opening,
        (
            f"But each step brought {possessive} a little closer, and the world seemed to "
            f"hold its breath."
        ),
        rng.choice(
            (
                (
                    f"At last, just as the light began to fade, {name} saw it: {topic}, "
                    f"more {adj} than any story had promised."
                ),
                (
                    f"Then, around a bend in the path, {topic} was suddenly right there, "
                    f"{adj} and real."
                ),
            )
        ),
    ]
    p3 = [
        f"{name} stayed for a long time, simply looking and listening.",
        rng.choice(
            (
                (
                    f"When {pronoun} finally went home, {pronoun} told everyone what {pronoun} "
                    f"had found, and this time they listened."
                ),
                (
                    f"{_cap(pronoun)} went home with a full heart and a story that {pronoun} "
                    f"would tell for years."
                ),
            )
        ),
        rng.choice(
            (
                "And from that day on, nobody in the village called it a legend again.",
                (
                    "Sometimes the things worth finding are the ones everyone else has stopped "
                    "looking for."
                ),
            )
        ),
    ]
    return "\n\n".join(" ".join(p) for p in (p1, p2, p3))


def _number_facts(number: str) -> list[Callable[[], str]]:
    """True sentences about ``number`` (without the final period), built on demand."""
    facts: list[Callable[[], str]] = []
    if number in FAMOUS_NUMBERS:
        facts.append(lambda: FAMOUS_NUMBERS[number])
    try:
        n = int(number)
    except ValueError:
        value = Fraction(number).limit_denominator(1000)
        low = math.floor(value)
        return [
            *facts,
            lambda: f"it lies between the whole numbers {low} and {low + 1}",
            lambda: f"as a fraction it can be written as {value.numerator}/{value.denominator}",
        ]
    if 1 < n <= 10**12:
        facts.append(lambda: _factors_fact(n))
    if n >= 0:
        facts.append(
            lambda: f"in binary it is written as {n:b}, and in Roman numerals as {_roman(n)}"
        )
    facts.append(lambda: f"it comes right after {n - 1} and just before {n + 1}")
    return facts


def _factors_fact(n: int) -> str:
    factors = _prime_factors(n)
    if factors == [n]:
        return f"it is a prime number, so it can only be divided evenly by 1 and {n}"
    listed = ", ".join(str(f) for f in factors[:-1]) + f" and {factors[-1]}"
    parity = "an even" if n % 2 == 0 else "an odd"
    return f"it is {parity} number whose prime factors are {listed}"


def _roman(n: int) -> str:
    if not 0 < n < 4000:
        return "nothing at all" if n == 0 else "a very long string of Ms"
    out = []
    for value, letters in (
        (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
        (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
    ):  # fmt: skip
        count, n = divmod(n, value)
        out.append(letters * count)
    return "".join(out)


def _prime_factors(n: int) -> list[int]:
    """The distinct prime factors of ``n`` (trial division; ``n`` comes from a prompt)."""
    factors: list[int] = []
    for d in (2, 3):
        if n % d == 0:
            factors.append(d)
            while n % d == 0:
                n //= d
    d = 5
    while d * d <= n:
        for q in (d, d + 2):
            if n % q == 0:
                factors.append(q)
                while n % q == 0:
                    n //= q
        d += 6
    if n > 1:
        factors.append(n)
    return sorted(factors)


def _write_fact(a: Analysis, rng: random.Random) -> str:
    if a.numbers:
        number = a.numbers[0]
        facts = _number_facts(number)
        famous = number in FAMOUS_NUMBERS
        first_i = 0 if famous else rng.randrange(max(1, len(facts) - 1))
        sentence = f"Here is a fact about the number {number}: {facts[first_i]()}."
        length = count_tokens(sentence)
        if length < 26:  # add a second fact that keeps the answer within 40 tokens
            others = [f for i, f in enumerate(facts) if i != first_i]
            rng.shuffle(others)
            for fact in others:
                text = fact()
                # " Also", "," and "." are three tokens; the fact's leading space joins a word
                if length + 3 + count_tokens(text) <= 40:
                    return f"{sentence} Also, {text}."
        return sentence
    topic = _short_topic(a)
    known = _knowledge(a)
    if known:
        return f"Here is a fact about {topic}: {_sentences(known)[1]}"
    return rng.choice(
        (
            (
                f"Here is a fact about {topic}: people have been curious about {topic} for "
                f"centuries, and there is still more to learn about it today."
            ),
            (
                f"Did you know? {_cap(topic)} has a longer history than most people think, "
                f"and it still surprises the experts who study it."
            ),
        )
    )


def _write_explain(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a, phrase=True)
    known = _knowledge(a)
    if known:
        return known
    kw = a.keywords[-1] if a.keywords else topic
    simple = "simple terms" in a.text.lower() or "simply" in a.text.lower()
    opener = f"In simple terms, {topic}" if simple else _cap(topic)
    sentences = [
        f"{opener} is about how {kw} works and why it behaves the way it does.",
        rng.choice(
            (
                (
                    "Imagine a team where each member has one small, clear job: on their own "
                    "the jobs look ordinary, but together they produce something bigger."
                ),
                (
                    "Think of it like a recipe: a few simple ingredients, combined in the right "
                    "order, give a result that none of them could give alone."
                ),
            )
        ),
        (
            f"The key idea behind {topic} is that small, well-understood steps add up to a "
            f"result that can look surprising from the outside."
        ),
        (
            f"People care about {topic} because it helps them understand what is happening "
            f"and predict what will happen next."
        ),
        rng.choice(
            (
                (
                    f"So if you remember one thing, remember this: {topic} becomes much easier "
                    f"once you break it into smaller pieces."
                ),
                (
                    f"In short, {topic} is less mysterious than it sounds once you see the "
                    f"simple parts it is made of."
                ),
            )
        ),
    ]
    return " ".join(sentences)


def _write_list(a: Analysis, rng: random.Random) -> str:
    count = a.quantity or 5
    count = max(1, min(count, 12))
    topic = _short_topic(a)
    items = _category_items(a)
    lines = [f"Here are {count} {topic}:", ""] if items else [f"Here are {count} ideas:", ""]
    if items:
        chosen = list(items)
        rng.shuffle(chosen)
        chosen = (chosen * (count // len(chosen) + 1))[:count]
        lines += [f"- {item}" for item in chosen]
    else:
        adjs = rng.sample(ADJECTIVES, min(count, len(ADJECTIVES)))
        notes = (
            "a good place to start",
            "often overlooked, but worth the effort",
            "simple to try and easy to remember",
            "useful when you are short on time",
            "a favourite among people who know the subject well",
        )
        for i in range(count):
            kw = a.keywords[i % len(a.keywords)] if a.keywords else topic
            lines.append(f"- {_cap(adjs[i % len(adjs)])} {kw}: {notes[(i + len(kw)) % len(notes)]}")
    return "\n".join(lines)


def _write_summary(a: Analysis, rng: random.Random) -> str:
    source = a.source or a.text
    sentences = _sentences(source)
    keywords = {w.lower() for w in words_in(source) if w.lower() not in STOP_WORDS}
    if len(sentences) <= 1:
        words = source.split()
        short = " ".join(words[: max(4, len(words) * 3 // 5)]).rstrip(",;:")
        return f"In short: {short}."
    scored = sorted(
        sentences[1:],
        key=lambda s: -sum(1 for w in words_in(s) if w.lower() in keywords) / (1 + len(s.split())),
    )
    keep = [sentences[0], *scored[: max(0, len(sentences) // 3 - 1)]]
    keep = sorted(keep, key=sentences.index)
    text = " ".join(keep)
    if len(text) >= len(source) * 0.8:
        text = sentences[0]
    return f"In short: {text}"


def _write_outline(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a)
    title = title_case(topic)
    kws = list(a.keywords) or [topic]
    sections = [
        (f"Introduction to {title}", [f"What {topic} is", "Why it matters"]),
        ("Background", [f"Where {topic} comes from", "Key terms"]),
        (f"How {title_case(kws[0])} Works", ["The main ideas", "A simple example"]),
        ("Challenges and Open Questions", ["Common misunderstandings", "What is still unknown"]),
        ("Conclusion", ["Summary of the main points", "Where to learn more"]),
    ]
    if rng.random() < 0.5:
        sections.insert(3, ("Real-World Uses", [f"{_cap(topic)} in everyday life", "Case studies"]))
    lines = []
    for i, (head, subs) in enumerate(sections, 1):
        lines.append(f"{i}. {head}")
        lines += [f"   - {s}" for s in subs]
    return "\n".join(lines)


def _write_joke(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a)
    return rng.choice(
        (
            (
                f"Why did {topic} sit alone at the party? Because it heard everyone else was "
                f"just there for the snacks!"
            ),
            (
                f"I tried to write a joke about {topic}, but it kept getting too serious. "
                f"I guess it needed more time to warm up!"
            ),
            f"What do you call {topic} that tells jokes? A pun-derful experience!",
        )
    )


_OPS: dict[str, tuple[str, Callable[[float, float], float]]] = {
    "+": ("plus", lambda x, y: x + y), "plus": ("plus", lambda x, y: x + y),
    "-": ("minus", lambda x, y: x - y), "minus": ("minus", lambda x, y: x - y),
    "*": ("times", lambda x, y: x * y), "x": ("times", lambda x, y: x * y),
    "\u00d7": ("times", lambda x, y: x * y), "times": ("times", lambda x, y: x * y),
    "/": ("divided by", lambda x, y: x / y if y else float("nan")),
    "divided by": ("divided by", lambda x, y: x / y if y else float("nan")),
    "^": ("to the power of", lambda x, y: x**y if abs(y) <= 64 else float("nan")),
}  # fmt: skip


def _number_text(value: float) -> str:
    if value != value:  # noqa: PLR0124 - NaN check
        return "undefined"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _write_math(a: Analysis, rng: random.Random) -> str:
    match = MATH_RE.search(a.text.lower())
    if not match:
        return _write_answer(a, rng)
    left, op, right = match.groups()
    word, fn = _OPS[op]
    result = _number_text(fn(float(left), float(right)))
    return rng.choice(
        (
            f"{left} {word} {right} is {result}.",
            f"The answer is {result}: {left} {word} {right} equals {result}.",
        )
    )


def _write_greeting(a: Analysis, rng: random.Random) -> str:
    return rng.choice(("Hello! How can I help you today?", "Hi there! What can I do for you?"))


def _write_answer(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a)
    known = _knowledge(a)
    if known:
        return " ".join(_sentences(known)[:2])
    kw = a.keywords[0] if a.keywords else topic
    return " ".join(
        (
            rng.choice(
                (
                    f"Good question about {topic}.",
                    f"Here is a short answer about {topic}.",
                    f"Let me think about {topic} for a moment.",
                )
            ),
            f"{_cap(topic)} depends mostly on {kw} and on the context you look at it in.",
            rng.choice(
                (
                    (
                        "In most cases the simplest explanation is the right one, and it is "
                        "worth checking the details before drawing a firm conclusion."
                    ),
                    (
                        "A good first step is to look at a small, concrete example and build "
                        "up from there."
                    ),
                )
            ),
        )
    )


_WRITERS = {
    "verse": _write_verse,
    "haiku": _write_haiku,
    "story": _write_story,
    "fact": _write_fact,
    "explain": _write_explain,
    "list": _write_list,
    "summary": _write_summary,
    "outline": _write_outline,
    "joke": _write_joke,
    "greeting": _write_greeting,
    "math": _write_math,
    "answer": _write_answer,
}


def _short_topic(a: Analysis, *, phrase: bool = False) -> str:
    text = a.phrase if phrase and a.phrase else a.topic
    words = text.split()
    topic = " ".join(words[:8]) if len(words) > 8 else text
    if topic[:1].isupper() and not topic[1:2].isupper() and topic.split()[0].lower() in STOP_WORDS:
        topic = topic[:1].lower() + topic[1:]
    return topic


def _knowledge(a: Analysis) -> str:
    low = a.topic.lower()
    for key, text in KNOWLEDGE.items():
        if key in low or (key.startswith("the ") and key[4:] in low):
            return text
    return ""


def _category_items(a: Analysis) -> tuple[str, ...]:
    for word in a.keywords:
        stem = word.lower().rstrip("s")
        if stem.endswith("ie"):
            stem = stem[:-2] + "y"
        for key, items in CATEGORIES.items():
            if stem in (key, key + "e") or stem.startswith(key):
                return items
        if stem == "programming":
            return CATEGORIES["language"]
    return ()


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if p] or [text]


def _fill(template: str, topic: str) -> str:
    return template.format(topic=topic, Topic=_cap(topic))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
