"""Reading a prompt for the local model's writer: :func:`analyse`.

It finds the kind of thing asked (a verse, a haiku, a story, a fact, an
explanation, a list, a summary, an outline, a joke, an answer), its topic and
key words, how many items and verses; :mod:`._text` writes the answer.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

__all__ = [
    "MATH_RE",
    "STOP_WORDS",
    "Analysis",
    "analyse",
    "title_case",
    "verse_count",
    "words_in",
]

_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")

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
MATH_RE = re.compile(
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
    keywords = tuple(dict.fromkeys([w for w in words_in(topic) if w.lower() not in STOP_WORDS]))
    if not keywords:
        keywords = tuple(
            dict.fromkeys(w for w in words_in(instruction) if w.lower() not in STOP_WORDS)
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


def words_in(text: str) -> list[str]:
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
        if bare and not STOP_WORDS.issuperset(words_in(bare.lower())):
            article = _ARTICLE_RE.match(phrase)
            if article and phrase[article.end() :].strip()[:80].strip() == bare:
                return bare, f"{article.group(1).lower()} {bare}"
            return bare, bare
    return "", ""


def _keywords_phrase(text: str) -> str:
    words = [w for w in words_in(text) if w.lower() not in STOP_WORDS]
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


def verse_count(low: str) -> int:
    match = _VERSES_RE.search(low)
    if not match:
        return 1
    value = match.group(1)
    number = int(value) if value.isdigit() else _NUMBER_WORDS.get(value, 1)
    return max(1, min(number, 5))
