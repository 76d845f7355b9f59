"""Vocabulary, fictional names and document text for the synthetic benchmark.

Everything here draws from a :class:`Draws` stream (uniform floats from a numpy ``Generator``), so a
world is reproducible on any machine: no Python ``random``, no ``hash``, no set iteration order (sets
are used for membership tests only).

Each document states exactly one *fact* (subject, relation, object) in one sentence that names both
entities in full, surrounded by filler sentences that name no entity but the subject. That one rule is
what lets an oracle find the evidence inside chunk text: in an evidence document the fact sentence is
the only sentence that contains the object's name (gold names are drawn ``strict``, see Names.new).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Syllables for invented names. Capitalised invented words cannot be guessed from world knowledge.
_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "pr", "r",
           "s", "sh", "st", "t", "th", "tr", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "ou")
_CODAS = ("", "", "", "", "", "n", "r", "l", "s", "m", "th", "sk", "nd", "v")
_FILM_NOUNS = ("Lights", "Harbor", "Winter", "Garden", "Crossing", "Tides", "Letters", "Summer",
               "Mirror", "Hours", "Road", "Station", "Lantern", "Orchard", "Silence", "Horizon")
_COMPANY_SUFFIXES = ("Industries", "Systems", "Holdings", "Works", "Labs", "Motors", "Foods",
                     "Textiles", "Logistics", "Pharmaceuticals", "Aerospace", "Media")
_BAND_NOUNS = ("Echoes", "Ravens", "Lanterns", "Saints", "Strangers", "Wolves", "Tigers", "Wheels",
               "Comets", "Sparrows", "Engines", "Mariners")
_CITY_ENDINGS = ("", "", "", "ford", "holm", "mere", "wick", "stead", "burg", "ton")
_COUNTRY_ENDINGS = ("ia", "ar", "and", "estan", "ovia", "ania", "ica", "os")


@dataclass(frozen=True)
class Relation:
    """One functional relation: every subject has exactly one object.

    Attributes:
        subject: entity kind of the subject.
        object: entity kind of the object.
        facts: sentence templates stating the fact (``{s}`` subject, ``{o}`` object, doc attributes).
        noun: question phrase for the object of a non-final hop (``{p}`` is the inner phrase).
        final: question template when this is the last hop.
    """

    subject: str
    object: str
    facts: tuple[str, ...]
    noun: str
    final: str


RELATIONS: dict[str, Relation] = {
    "directed_by": Relation(
        "film", "person",
        ("{s} was directed by {o}.", "{s} is a {year} {genre} film directed by {o}.",
         "{o} directed {s}, which premiered in {year}."),
        "the director of {p}", "Who directed {p}?"),
    "founded_by": Relation(
        "company", "person",
        ("{s} was founded by {o}.", "{o} founded {s} in {year}.",
         "{s} was founded in {year} by {o}."),
        "the founder of {p}", "Who founded {p}?"),
    "lead_singer": Relation(
        "band", "person",
        ("The lead singer of {s} is {o}.", "{o} is the lead singer of {s}.",
         "{s} is fronted by lead singer {o}."),
        "the lead singer of {p}", "Who is the lead singer of {p}?"),
    "headquartered_in": Relation(
        "company", "city",
        ("{s} is headquartered in {o}.", "The headquarters of {s} are in {o}.",
         "{s} moved its headquarters to {o} in {year}."),
        "the city where {p} is headquartered", "In which city is {p} headquartered?"),
    "born_in": Relation(
        "person", "city",
        ("{s} was born in {o}.", "{s} was born in {o} in {year}.",
         "Born in {o} in {year}, {s} grew up near the river."),
        "the birthplace of {p}", "In which city was {p} born?"),
    "studied_under": Relation(
        "person", "person",
        ("{s} studied under {o}.", "As a young {occupation}, {s} studied under {o}.",
         "{s} was a student of {o} for {n} years."),
        "the teacher of {p}", "Under whom did {p} study?"),
    "located_in": Relation(
        "city", "country",
        ("{s} is a city in {o}.", "{s} lies in the north of {o}.",
         "{s} is the {ordinal} largest city of {o}."),
        "the country of {p}", "In which country is {p} located?"),
}

# How each kind is named at the start of a question.
START_PHRASES = {"film": "the film {s}", "company": "the company {s}", "band": "the band {s}",
                 "person": "{s}", "city": "the city {s}", "country": "the country {s}"}

# Relation paths by number of hops, enumerated in a fixed order (tuples, never sets).
def _paths(hops: int) -> tuple[tuple[str, ...], ...]:
    paths: list[tuple[str, ...]] = [(name,) for name in RELATIONS]
    for _ in range(hops - 1):
        paths = [p + (name,) for p in paths for name, rel in RELATIONS.items()
                 if rel.subject == RELATIONS[p[-1]].object]
    return tuple(paths)


PATHS: dict[int, tuple[tuple[str, ...], ...]] = {h: _paths(h) for h in (1, 2, 3)}

_INTROS = {
    "film": ("{s} is a {year} {genre} film.", "{s} is a {genre} film released in {year}."),
    "company": ("{s} is a {sector} company.", "{s} is a privately held {sector} firm."),
    "band": ("{s} is a {style} band.", "{s} are a {style} group formed in {year}."),
    "person": ("{s} is a {occupation}.", "{s} is a {occupation} and former teacher."),
    "city": ("{s} is a {size} city.", "{s} is a {size} town on a wide river."),
}
_FILLERS = {
    "film": ("{s} received mixed reviews from critics.", "The film ran for {n} weeks in cinemas.",
             "{s} was shot over {n} months.", "Its soundtrack was released a year later.",
             "{s} won {n} awards at regional festivals.", "The film was restored in {later}."),
    "company": ("{s} employs about {n} thousand people.", "The company went public in {later}.",
                "{s} opened its first factory in {year}.", "Its annual report lists {n} divisions.",
                "{s} sponsors a small local museum.", "The firm nearly went bankrupt in {later}."),
    "band": ("{s} released {n} studio albums.", "The group toured widely in {later}.",
             "{s} went on hiatus for {n} years.", "Their debut single reached the charts.",
             "{s} are known for long live shows.", "The band changed labels in {later}."),
    "person": ("{s} wrote {n} books about the craft.", "{s} retired in {later}.",
               "{s} received a national award in {later}.", "Colleagues described the work as meticulous.",
               "{s} spent {n} years abroad.", "{s} rarely gave interviews."),
    "city": ("{s} has about {n} thousand inhabitants.", "The old town was rebuilt in {year}.",
             "{s} is known for its annual spring market.", "A railway reached the town in {later}.",
             "{s} has {n} bridges.", "Its university was founded in {early}."),
}
_ATTRS = {
    "genre": ("drama", "comedy", "thriller", "documentary", "romance", "war", "science fiction"),
    "sector": ("shipping", "software", "food", "chemicals", "textile", "railway", "media"),
    "style": ("rock", "folk", "jazz", "punk", "synth-pop", "blues", "metal"),
    "occupation": ("painter", "film director", "novelist", "composer", "mathematician", "sculptor",
                   "photographer", "chemist", "singer", "historian"),
    "size": ("small", "large", "coastal", "mountain", "provincial", "harbour"),
    "ordinal": ("second", "third", "fourth", "fifth"),
}
# Lower-cased text of every template: a gold name must not occur in it (see Names.new).
VOCABULARY = " ".join(
    [t for r in RELATIONS.values() for t in (*r.facts, r.noun, r.final)]
    + list(START_PHRASES.values())
    + [t for group in (_INTROS, _FILLERS, _ATTRS) for ts in group.values() for t in ts]
).lower()


class Draws:
    """Uniform floats from a numpy ``Generator`` drawn in blocks (one scalar draw per pick is slow)."""

    def __init__(self, rng: np.random.Generator, block: int = 2048) -> None:
        self._rng = rng
        self._block = block
        self._buf: list[float] = []
        self._i = 0

    def uniform(self) -> float:
        """Next float in [0, 1)."""
        i = self._i
        if i == len(self._buf):
            self._buf = self._rng.random(self._block).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def index(self, n: int) -> int:
        """Uniform integer in ``[0, n)``."""
        k = int(self.uniform() * n)
        return k if k < n else n - 1  # u * n can round up to n when u is just below 1

    def integer(self, low: int, high: int) -> int:
        """Uniform integer in ``[low, high]``."""
        return low + self.index(high - low + 1)

    def pick(self, items: Sequence[str]) -> str:
        """Uniform element of ``items``."""
        return items[self.index(len(items))]


# Every onset-vowel-coda combination, so a syllable costs one draw instead of three.
_SYLLABLES = tuple(o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS)


def _syllable(d: Draws) -> str:
    return d.pick(_SYLLABLES)


def _word(d: Draws, syllables: int = 2) -> str:
    return "".join(_syllable(d) for _ in range(syllables)).capitalize()


# Each kind's name is a few slots; a hard-distractor name keeps one slot of its gold twin.
def _slots(kind: str, d: Draws) -> tuple[tuple[str, ...], str]:
    if kind == "person":
        return (_word(d), _word(d, d.integer(2, 3))), " "
    if kind == "city":
        return (_syllable(d).capitalize(), _syllable(d) + d.pick(_CITY_ENDINGS)), ""
    if kind == "country":
        return (_syllable(d).capitalize(), _syllable(d) + d.pick(_COUNTRY_ENDINGS)), ""
    extra = {"film": _FILM_NOUNS, "company": _COMPANY_SUFFIXES, "band": _BAND_NOUNS}[kind]
    return (_word(d), d.pick(extra)), " "


class Names:
    """Generates unique entity names; remembers their slots so look-alike names can be made."""

    def __init__(self, draws: Draws) -> None:
        self._d = draws
        self._used: set[str] = set()  # membership only, never iterated
        self._strict: list[str] = []
        self._slots: dict[str, tuple[str, ...]] = {}

    def new(self, kind: str, like: str | None = None, strict: bool = False) -> str:
        """A fresh name of ``kind``.

        Args:
            kind: entity kind (``person``, ``city``, ``country``, ``film``, ``company``, ``band``).
            like: an existing name of the same kind; the new one keeps one of its slots (a syllable,
                a first or last name), which makes it a hard distractor for keyword matching.
            strict: for gold and hard-distractor names: no strict name may contain another one and
                none may occur in the templates, so a name identifies its sentence unambiguously.
        """
        for _ in range(1000):
            slots, joiner = _slots(kind, self._d)
            if like is not None:
                keep = self._d.index(2) if kind == "person" else 0
                slots = tuple(old if i == keep else new for i, (old, new)
                              in enumerate(zip(self._slots[like], slots, strict=True)))
            name = joiner.join(slots)
            low = name.lower()
            if low in self._used or len(name) < 4:
                continue
            if strict and (low in VOCABULARY or any(low in s or s in low for s in self._strict)):
                continue
            self._used.add(low)
            self._slots[name] = slots
            if strict:
                self._strict.append(low)
            return name
        raise RuntimeError(f"could not draw a fresh {kind} name")  # pragma: no cover - 1000 tries


def render_document(d: Draws, kind: str, subject: str, relation: str, obj: str) -> tuple[str, str]:
    """A Wikipedia-like paragraph ``"{subject}\\n{2-5 sentences}"`` stating one fact.

    Returns:
        The document text and its fact sentence (which occurs in the text verbatim).
    """
    # One draw for all attributes (a document uses one or two of them): five bits per attribute.
    bits = d.index(1 << 30)
    attrs: dict[str, object] = {key: values[(bits >> (5 * j)) % len(values)]
                                for j, (key, values) in enumerate(_ATTRS.items())}
    year = d.integer(1850, 1990)
    attrs.update(year=year, later=year + d.integer(20, 30), early=year - d.integer(50, 300), n=d.integer(2, 40),
                 s=subject, o=obj)
    fact = d.pick(RELATIONS[relation].facts).format(**attrs)
    fact = fact[0].upper() + fact[1:]
    fillers = _FILLERS[kind]
    chosen: list[int] = []
    for _ in range(d.integer(0, 3)):
        j = d.index(len(fillers))
        if j not in chosen:
            chosen.append(j)
    body = [f.format(**attrs) for f in (d.pick(_INTROS[kind]), *(fillers[j] for j in chosen))]
    body.insert(1 + d.index(len(body)), fact)
    return f"{subject}\n{' '.join(body)}", fact


def question_text(path: Sequence[str], start: str) -> str:
    """The question that follows ``path`` from the entity ``start``."""
    phrase = START_PHRASES[RELATIONS[path[0]].subject].format(s=start)
    for relation in path[:-1]:
        phrase = RELATIONS[relation].noun.format(p=phrase)
    return RELATIONS[path[-1]].final.format(p=phrase)
