"""The word banks the local model's writer (:mod:`._text`) composes from."""

from __future__ import annotations

__all__ = [
    "ADJECTIVES",
    "CATEGORIES",
    "CHARACTERS",
    "FAMOUS_NUMBERS",
    "KNOWLEDGE",
    "PLAIN_STARTS",
    "RHYMES",
    "SETTINGS",
    "TOPIC_STARTS",
]

RHYMES = (
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
TOPIC_STARTS = (
    "Oh {topic}", "Here's to {topic}", "I sing of {topic}", "{Topic}, my friend",
    "Give me {topic}", "With {topic} near", "Sweet {topic}", "I dream of {topic}",
)  # fmt: skip
PLAIN_STARTS = (
    "It fills my heart", "It calls to me", "It lifts my mood", "We raise a cheer",
    "It makes me smile", "I hum along", "The world slows down", "My worries fade",
    "We laugh out loud", "The moment glows",
)  # fmt: skip
CHARACTERS = (
    ("Pip", "a curious little fox", "he"), ("Mara", "an old lighthouse keeper", "she"),
    ("Leo", "a young inventor", "he"), ("Ada", "a quiet girl with a notebook", "she"),
    ("Tomas", "a retired sailor", "he"), ("Juno", "a clever young otter", "she"),
)  # fmt: skip
SETTINGS = (
    "in a village at the edge of a great forest", "in a busy city by the sea",
    "high in the mountains where the air was thin", "in a small town with crooked streets",
    "on an island that appeared on no map",
)  # fmt: skip
ADJECTIVES = (
    "bright", "quiet", "gentle", "curious", "golden", "silver", "simple", "bold",
    "hidden", "clear", "warm", "strange", "lively", "patient", "remarkable",
)  # fmt: skip

KNOWLEDGE = {
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
CATEGORIES = {
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
FAMOUS_NUMBERS = {
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
