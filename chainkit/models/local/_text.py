"""The local model's writer: deterministic, prompt-aware text from templates.

:func:`analyse` reads a prompt for the kind of thing asked (a verse, a haiku,
a story, a fact, an explanation, a list, a summary, an outline, a joke, an
answer) and its topic and key words; :func:`write` composes text of a natural
length for it from word banks, choosing with a :class:`random.Random` seeded by
a stable hash, so the same request always gives the same words.

Tokens are word-ish: a word with its leading whitespace is one token, each
punctuation mark is one (:func:`tokenize`); usage counts use the same rule.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = [
    "Analysis",
    "Rng",
    "analyse",
    "count_tokens",
    "stable_seed",
    "title_case",
    "tokenize",
    "write",
]

_TOKEN_RE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens whose concatenation is ``text``."""
    return _TOKEN_RE.findall(text)


@lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


class Rng(random.Random):
    """A fast seeded generator (splitmix64) with :class:`random.Random`'s methods.

    Seeding the standard Mersenne Twister costs more than writing a short text,
    and the server seeds one per request.
    """

    _state: int

    def seed(self, a: Any = None, version: int = 2) -> None:
        self._state = (int(a) if a is not None else 0) & _MASK64

    def _next(self) -> int:
        self._state = z = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self._next() >> 11) * 1.1102230246251565e-16

    def getrandbits(self, k: int) -> int:
        if k <= 64:
            return self._next() >> (64 - k) if k else 0
        return int.from_bytes(
            b"".join(self._next().to_bytes(8, "big") for _ in range((k + 63) // 64)), "big"
        ) >> (-k % 64)

    def getstate(self) -> Any:
        return self._state

    def setstate(self, state: Any) -> None:
        self._state = int(state)


_MASK64 = (1 << 64) - 1


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from ``parts`` that is the same in every process."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# fmt: off
STOP_WORDS = frozenset((
    "a", "an", "the", "and", "or", "but", "if", "then", "else", "of", "to", "in", "on", "at",
    "by", "for", "with", "about", "from", "into", "over", "under", "as", "is", "are", "was",
    "were", "be", "been", "being", "am", "do", "does", "did", "doing", "have", "has", "had",
    "i", "me", "my", "we", "our", "you", "your", "he", "she", "it", "its", "they", "them",
    "their", "this", "that", "these", "those", "what", "which", "who", "whom", "whose", "why",
    "how", "when", "where", "there", "here", "so", "than", "too", "very", "can", "could",
    "should", "would", "will", "shall", "may", "might", "must", "not", "no", "yes", "just",
    "also", "only", "some", "any", "all", "each", "every", "more", "most", "other", "such",
    "own", "same", "few", "both", "please", "tell", "write", "give", "make", "create",
    "compose", "show", "let", "us", "explain", "describe", "summarize", "summarise", "summary",
    "list", "name", "generate", "produce", "provide", "draft", "short", "long", "brief",
    "simple", "terms", "words", "word", "sentence", "sentences", "line", "lines", "paragraph",
    "paragraphs", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "verse", "verses", "song", "songs",
    "poem", "poems", "haiku", "story", "stories", "tale", "fact", "facts", "joke", "jokes",
    "outline", "bullet", "points", "point", "thing", "things", "something", "kind", "style",
    "like", "using", "use", "answer", "question", "following", "text", "above", "below", "per",
    "up", "out", "down", "off", "again", "further", "once", "really", "quite", "kid", "kids",
    "child", "children", "beginner", "beginners", "recipe", "recipes", "title", "slogan",
))
# fmt: on

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "a few": 3, "several": 4,
}  # fmt: skip

# Kinds, in priority order: the first listed kind found in the prompt wins.
_KINDS: tuple[tuple[str, str], ...] = (
    ("extract", r"extract|pull out"),
    ("summary", r"summari[sz]e|summary|tl;?dr|sum up|condense"),
    ("title", r"titles?|headlines?"),
    ("slogan", r"slogans?|taglines?|motto"),
    ("outline", r"outline"),
    ("recipe", r"recipes?"),
    (
        "code",
        (
            r"code|snippet|python|javascript|typescript|sql|regex|write a function|"
            r"write a program|write a script"
        ),
    ),
    ("classify", r"classify|categori[sz]e|sentiment"),
    ("yesno", r"yes or no|yes/no|true or false"),
    ("haiku", r"haikus?"),
    ("verse", r"verses?|songs?|poems?|poetry|rhymes?|lyrics|limericks?|sonnets?"),
    ("story", r"story|stories|tale|fable|narrative"),
    ("joke", r"jokes?|pun|funny"),
    ("fact", r"facts?|trivia"),
    ("list", r"list|bullet|enumerate|ideas|tips|ways|reasons|examples"),
    ("explain", r"explain|describe|how does|how do|why does|why do|why is|why are"),
    ("math", r"\d+(?:\.\d+)?\s*(?:[-+*/x\u00d7^]|plus|minus|times|divided by)\s*\d"),
    ("greeting", r"^(?:hi|hello|hey|good (?:morning|afternoon|evening))"),
)
_KIND_RANK = {name: i for i, (name, _) in enumerate(_KINDS)}
_KIND_WORDS: dict[str, str] = {}
_KIND_PHRASES: list[tuple[str, str]] = []
for _name, _alternatives in _KINDS:
    if _name in ("math", "greeting"):
        continue
    for _alt in _alternatives.split("|"):
        _forms = [_alt]
        if _alt.endswith("s?"):
            _forms = [_alt[:-2], _alt[:-2] + "s"]
        elif _alt.endswith("[sz]e"):
            _forms = [_alt.replace("[sz]", "s"), _alt.replace("[sz]", "z")]
        elif _alt == "tl;?dr":
            _forms = ["tl;dr", "tldr"]
        for _form in _forms:
            if " " in _form or ";" in _form or "/" in _form:
                _KIND_PHRASES.append((_form, _name))
            else:
                _KIND_WORDS.setdefault(_form, _name)
_KIND_WORD_RANK = {word: _KIND_RANK[kind] for word, kind in _KIND_WORDS.items()}
_KIND_PHRASE_RANK = [(phrase, _KIND_RANK[kind]) for phrase, kind in _KIND_PHRASES]
_MATH_RANK = _KIND_RANK["math"]
_GREETING_RANK = _KIND_RANK["greeting"]
_NO_KIND = len(_KINDS)
_LOWER_WORD_RE = re.compile(r"[a-z]+")
_DIGIT_RE = re.compile(r"\d")
_MATH_KIND_RE = re.compile(_KINDS[_KIND_RANK["math"]][1])
_GREETING_RE = re.compile(_KINDS[_KIND_RANK["greeting"]][1])
_COUNT_RE = re.compile(r"\b(\d{1,2})\s+(?!verse)[a-z]")
_COUNT_WORDS_RE = re.compile(rf"\b({'|'.join(_NUMBER_WORDS)})\b")
_VERSES_RE = re.compile(r"\b(\d+|one|two|three|four|five)[- ]verses?\b")
_MATH_RE = re.compile(
    r"(-?\d+(?:\.\d+)?)\s*([-+*/x\u00d7^]|plus|minus|times|divided by)\s*(-?\d+(?:\.\d+)?)"
)


def _kind(low: str) -> str:
    """The highest-priority kind whose words appear in ``low`` (lowercased), else "answer"."""
    ranks = _KIND_WORD_RANK
    best = min([ranks[w] for w in _LOWER_WORD_RE.findall(low) if w in ranks], default=_NO_KIND)
    for phrase, rank in _KIND_PHRASE_RANK:
        if rank < best and phrase in low:
            best = rank
    if best > _MATH_RANK and _DIGIT_RE.search(low) and _MATH_KIND_RE.search(low):
        best = _MATH_RANK
    if best > _GREETING_RANK and _GREETING_RE.match(low):
        best = _GREETING_RANK
    return _KINDS[best][0] if best < _NO_KIND else "answer"


_TOPIC_PATTERNS = (
    re.compile(r"\babout\s+(.+)", re.I),
    re.compile(r"\bregarding\s+(.+)", re.I),
    re.compile(r"\bconcerning\s+(.+)", re.I),
    re.compile(r"\b(?:explain|describe|define)\s+(?:to me\s+)?(?:what\s+)?(.+)", re.I),
    re.compile(r"\b(?:what is|what are|what's|who is|who was|how does|how do)\s+(.+)", re.I),
    re.compile(r"\b(?:list|name|suggest)\s+(.+)", re.I),
    re.compile(r"\b(?:on|of|for)\s+(.+)", re.I),
    re.compile(r"\bwith\s+(.+)", re.I),
)
_TOPIC_CUTS = re.compile(
    r"(\s+(in simple terms|in plain (english|words|language)|simply|in \w+ (words|sentences|"
    r"lines|paragraphs|bullet points|points)|for (a|an|my) (child|kid|beginner|five[- ]year[- ]old"
    r"|\w+ audience)|for (kids|children|beginners)|like i'?m \w+|in the style of .*|as a .*|"
    r"please|work|works)\b.*$)|[.?!;:\n].*$|,.*$",
    re.I | re.S,
)
_WORK_PREFIX = re.compile(
    r"^(?:(?:an?|the|my|our)\s+)?(?:short\s+|brief\s+)?(?:essay|article|blog post|post|"
    r"presentation|report|talk|speech|lecture|paper|course|book|guide|tweet|email)s?\s+"
    r"(?:on|about|for|of)\s+",
    re.I,
)
_ARTICLE_RE = re.compile(r"^(a|an|the)\s+", re.I)
_LEADING_FILLER = re.compile(
    r"^(?:(?:me|us|a|an|the|some|\d+|one|two|three|four|five|six|seven|eight|nine|ten|short|"
    r"brief|quick|simple|little|few|couple|of|interesting|fun|random|good|great|list|verses?|"
    r"songs?|poems?|haikus?|stories|story|facts?|jokes?|ideas?|tips)\s+)+",
    re.I,
)


class Analysis(NamedTuple):
    """What a prompt asks for (a named tuple: cheap to build, hashable for caches)."""

    text: str
    kind: str
    topic: str
    keywords: tuple[str, ...]
    quantity: int | None  # "five fruits", "3 tips"
    numbers: tuple[str, ...]
    source: str  # the text to summarize, for summaries
    phrase: str = ""  # the topic with its article ("a dragon who loves tea")

    @property
    def title(self) -> str:
        return title_case(self.topic)


def title_case(text: str) -> str:
    small = {"a", "an", "the", "of", "on", "in", "and", "or", "to", "for", "at", "by"}
    words = text.split()
    return " ".join(
        w if (i and w.lower() in small) or not w[:1].islower() else w[:1].upper() + w[1:]
        for i, w in enumerate(words)
    )


@lru_cache(maxsize=4096)
def analyse(text: str) -> Analysis:
    """Read ``text`` (the instruction) for its kind, topic, key words and count."""
    text = text.strip()
    instruction, source = _split_source(text)
    low = instruction.lower()
    kind = _kind(low)
    if kind == "outline" and re.search(r"\b(?:story|stories|tale|novel|plot)\b", low):
        kind = "story_outline"
    topic, phrase = _topic(instruction)
    if not topic:
        topic = _keywords_phrase(source) if source else ""
    if not topic:
        topic = _keywords_phrase(instruction) or "this"
    phrase = phrase or topic
    keywords = tuple(dict.fromkeys([w for w in _words(topic) if w.lower() not in STOP_WORDS]))
    if not keywords:
        keywords = tuple(
            dict.fromkeys(w for w in _words(instruction) if w.lower() not in STOP_WORDS)
        )[:6]
    count = _count(low)
    numbers = tuple(_NUMBER_RE.findall(instruction))
    return Analysis(text, kind, topic, keywords, count, numbers, source, phrase)


_SOURCE_RE = re.compile(r"[:\n]\s*\n?")


def _split_source(text: str) -> tuple[str, str]:
    """Separate an instruction from a text given to work on ("Summarize: ...")."""
    match = _SOURCE_RE.search(text)
    if match and len(text) - match.end() > 80:
        return text[: match.start()], text[match.end() :].strip()
    if "\n\n" in text:
        head, _, tail = text.partition("\n\n")
        if len(tail) > len(head):
            return head, tail.strip()
    return text, ""


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def _topic(instruction: str) -> tuple[str, str]:
    """(bare topic, topic with its article) from the instruction, or ("", "")."""
    for pattern in _TOPIC_PATTERNS:
        match = pattern.search(instruction)
        if not match:
            continue
        phrase = _TOPIC_CUTS.sub("", match.group(1)).strip(" \"'`*")
        phrase = _WORK_PREFIX.sub("", phrase)
        bare = _LEADING_FILLER.sub("", phrase).strip()[:80].strip()
        if bare and not STOP_WORDS.issuperset(_words(bare.lower())):
            article = _ARTICLE_RE.match(phrase)
            if article and phrase[article.end() :].strip()[:80].strip() == bare:
                return bare, f"{article.group(1).lower()} {bare}"
            return bare, bare
    return "", ""


def _keywords_phrase(text: str) -> str:
    words = [w for w in _words(text) if w.lower() not in STOP_WORDS]
    counts: dict[str, int] = {}
    for w in words:
        counts[w.lower()] = counts.get(w.lower(), 0) + 1
    top = sorted(dict.fromkeys(words), key=lambda w: -counts[w.lower()])[:3]
    order = [w for w in dict.fromkeys(words) if w in top]
    return " ".join(order)


def _count(low: str) -> int | None:
    match = _COUNT_RE.search(low)
    if match and 0 < int(match.group(1)) <= 20:
        return int(match.group(1))
    match = _COUNT_WORDS_RE.search(low)
    return _NUMBER_WORDS[match.group(1)] if match else None


def _verse_count(low: str) -> int:
    match = _VERSES_RE.search(low)
    if not match:
        return 1
    value = match.group(1)
    number = int(value) if value.isdigit() else _NUMBER_WORDS.get(value, 1)
    return max(1, min(number, 5))


# ------------------------------------------------------------------ word banks

_RHYMES = (
    ("in the morning light", "shining clear and bright", "dancing through the night",
     "a wonder to the sight", "like a bird in flight", "a small and happy light"),
    ("to brighten up the day", "in a playful way", "where the children play",
     "on a summer day", "to chase the grey away", "in every single way"),
    ("as wild as the sea", "so easy and so free", "for you and for me",
     "like leaves upon a tree", "as sweet as it can be"),
    ("with a gentle glow", "wherever we may go", "in the streams below",
     "as the soft winds blow", "from head down to toe"),
    ("like the first day of spring", "a small and shining thing", "on a silver string",
     "with a joyful ring"),
    ("with a fizzing sound", "spinning round and round", "high above the ground",
     "the best that I have found"),
    ("in a shade of blue", "the whole day through", "fresh and bright and new",
     "a dream that's coming true"),
    ("right from the start", "a work of art", "close to my heart", "never far apart"),
)  # fmt: skip
_TOPIC_STARTS = (
    "Oh {topic}", "Here's to {topic}", "I sing of {topic}", "{Topic}, my friend",
    "Give me {topic}", "With {topic} near", "Sweet {topic}", "I dream of {topic}",
)  # fmt: skip
_PLAIN_STARTS = (
    "It fills my heart", "It calls to me", "It lifts my mood", "We raise a cheer",
    "It makes me smile", "I hum along", "The world slows down", "My worries fade",
    "We laugh out loud", "The moment glows",
)  # fmt: skip
_CHARACTERS = (
    ("Pip", "a curious little fox", "he"), ("Mara", "an old lighthouse keeper", "she"),
    ("Leo", "a young inventor", "he"), ("Ada", "a quiet girl with a notebook", "she"),
    ("Tomas", "a retired sailor", "he"), ("Juno", "a clever young otter", "she"),
)  # fmt: skip
_SETTINGS = (
    "in a village at the edge of a great forest", "in a busy city by the sea",
    "high in the mountains where the air was thin", "in a small town with crooked streets",
    "on an island that appeared on no map",
)  # fmt: skip
_ADJECTIVES = (
    "bright", "quiet", "gentle", "curious", "golden", "silver", "simple", "bold",
    "hidden", "clear", "warm", "strange", "lively", "patient", "remarkable",
)  # fmt: skip

_KNOWLEDGE = {
    "quantum computing": (
        "Quantum computing is a way of processing information using the rules of quantum "
        "physics. An ordinary computer stores bits that are either 0 or 1, but a quantum "
        "computer uses qubits, which can be in a mix of 0 and 1 at the same time, called "
        "superposition. Qubits can also be linked together through entanglement, so the "
        "state of one depends on another. By combining these effects, a quantum computer can "
        "explore many possibilities at once and solve some problems, like simulating "
        "molecules or factoring large numbers, much faster than a regular computer. Today's "
        "machines are still small and error-prone, so researchers are working hard to make "
        "them bigger and more reliable."
    ),
    "machine learning": (
        "Machine learning is a way of teaching computers by example instead of writing every "
        "rule by hand. You show a program many examples, such as photos labelled cat or dog, "
        "and it adjusts itself until its guesses match the labels. Once trained, it can make "
        "good guesses about new examples it has never seen. It powers things like spam "
        "filters, recommendations and voice assistants."
    ),
    "photosynthesis": (
        "Photosynthesis is how plants make their own food. They take in sunlight, water from "
        "the soil and carbon dioxide from the air, and turn them into sugar that gives them "
        "energy. As a bonus, they release oxygen, which is the air we breathe."
    ),
    "gravity": (
        "Gravity is the pull that every object with mass has on every other object. The more "
        "mass something has, the stronger its pull, which is why the Earth keeps our feet on "
        "the ground and the Moon in its orbit. The farther apart two things are, the weaker "
        "the pull between them."
    ),
    "the internet": (
        "The internet is a giant network of computers that can send messages to each other. "
        "Information is cut into small packets, sent along many paths and put back together "
        "at the other end. Websites, email and video calls all travel this way."
    ),
    "black holes": (
        "A black hole is a place in space where gravity is so strong that nothing, not even "
        "light, can escape. It forms when a huge star runs out of fuel and collapses into a "
        "tiny point. We cannot see black holes directly, but we can see how they pull on "
        "nearby stars and gas."
    ),
}
_CATEGORIES = {
    "fruit": ("Apple", "Banana", "Mango", "Orange", "Strawberry", "Pineapple", "Kiwi", "Pear"),
    "color": ("Red", "Blue", "Green", "Yellow", "Purple", "Orange", "Teal", "Crimson"),
    "animal": ("Elephant", "Dolphin", "Owl", "Fox", "Penguin", "Tiger", "Octopus", "Koala"),
    "planet": ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"),
    "vegetable": ("Carrot", "Broccoli", "Spinach", "Potato", "Pepper", "Onion", "Pea", "Leek"),
    "language": ("Python", "JavaScript", "Rust", "Go", "Java", "TypeScript", "C", "Kotlin"),
    "sport": ("Football", "Tennis", "Swimming", "Cycling", "Basketball", "Running", "Rowing"),
    "instrument": ("Piano", "Guitar", "Violin", "Drums", "Flute", "Cello", "Trumpet"),
    "country": ("Japan", "Brazil", "Kenya", "Canada", "Norway", "India", "Mexico", "Spain"),
}
_FAMOUS_NUMBERS = {
    "0": "it is the only number that is neither positive nor negative",
    "1": "it is the only positive number that divides every whole number",
    "7": "it is often called the most popular lucky number in the world",
    "12": "it is the number of months in a year and of hours on a clock face",
    "13": "many buildings skip a 13th floor because some people think it is unlucky",
    "42": (
        "in Douglas Adams' The Hitchhiker's Guide to the Galaxy, it is the Answer to the "
        "Ultimate Question of Life, the Universe, and Everything"
    ),
    "100": "water boils at 100 degrees Celsius at sea level",
    "365": "it is the number of days in a common year",
}


# ------------------------------------------------------------------ writers


def write(analysis: Analysis, rng: random.Random, *, completion: bool = False) -> str:
    """Text answering ``analysis``; ``rng`` picks among templates."""
    writer = _WRITERS.get(analysis.kind, _write_answer)
    return writer(analysis, rng).strip()


def _write_verse(a: Analysis, rng: random.Random) -> str:
    topic = _short_topic(a)
    low = a.text.lower()
    verses = []
    for _ in range(_verse_count(low)):
        fam_a, fam_b = rng.sample(_RHYMES, 2)
        ends_a = rng.sample(fam_a, 2)
        ends_b = rng.sample(fam_b, 2)
        starts = rng.sample(_TOPIC_STARTS, 2)
        plains = rng.sample(_PLAIN_STARTS, 2)
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
    name, who, pronoun = rng.choice(_CHARACTERS)
    setting = rng.choice(_SETTINGS)
    adj = rng.choice(_ADJECTIVES)
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
    if number in _FAMOUS_NUMBERS:
        facts.append(lambda: _FAMOUS_NUMBERS[number])
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
        famous = number in _FAMOUS_NUMBERS
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
        adjs = rng.sample(_ADJECTIVES, min(count, len(_ADJECTIVES)))
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
    keywords = {w.lower() for w in _words(source) if w.lower() not in STOP_WORDS}
    if len(sentences) <= 1:
        words = source.split()
        short = " ".join(words[: max(4, len(words) * 3 // 5)]).rstrip(",;:")
        return f"In short: {short}."
    scored = sorted(
        sentences[1:],
        key=lambda s: -sum(1 for w in _words(s) if w.lower() in keywords) / (1 + len(s.split())),
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
    match = _MATH_RE.search(a.text.lower())
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
    for key, text in _KNOWLEDGE.items():
        if key in low or (key.startswith("the ") and key[4:] in low):
            return text
    return ""


def _category_items(a: Analysis) -> tuple[str, ...]:
    for word in a.keywords:
        stem = word.lower().rstrip("s")
        if stem.endswith("ie"):
            stem = stem[:-2] + "y"
        for key, items in _CATEGORIES.items():
            if stem in (key, key + "e") or stem.startswith(key):
                return items
        if stem == "programming":
            return _CATEGORIES["language"]
    return ()


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if p] or [text]


def _fill(template: str, topic: str) -> str:
    return template.format(topic=topic, Topic=_cap(topic))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
