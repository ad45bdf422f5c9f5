"""What a search box's text becomes in each database's full-text language.

Names and companies match by word prefix, case- and accent-insensitively, ``ё`` as ``е``:
``ива петр`` finds "Иван Петров", ``jose`` finds "José". Messages match by word stem,
each query word's stem as a prefix: ``кластеры`` finds "кластер" and "кластерами",
``clusters`` finds "cluster". On SQLite the stems come from Snowball's Russian and
English stemmers here; PostgreSQL stems with the same Snowball algorithms itself
(``to_tsquery('russian', ...)``). Every word must match (AND).

A query's words are ``\\w+`` runs only, so nothing of the user's text reaches either
engine's query syntax.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

MAX_QUERY = 200  # characters
MAX_WORDS = 8
# Latin accents PostgreSQL folds in the contacts' index (migration 0014 freezes the same
# letters); SQLite's unicode61 tokenizer folds these and more by itself.
ACCENTS_FROM = "ёàáâãäåāăąçćčďèéêëēėęěìíîïīįłñńňòóôõöøōőřśšşťùúûüūůűųýÿźżž"
ACCENTS_TO = "еaaaaaaaaacccdeeeeeeeeiiiiiilnnnoooooooorssstuuuuuuuuyyzzz"
_FOLD = str.maketrans(ACCENTS_FROM, ACCENTS_TO)
_WORD = re.compile(r"\w+")
_CYRILLIC = re.compile(r"[а-я]")


class SearchQueryError(ValueError):
    """The search text cannot be searched for (empty, too long, no words)."""


@dataclass(frozen=True, slots=True)
class Words:
    """A search text's words, lower-cased and folded (``ё`` -> ``е``, Latin accents off)."""

    text: str
    words: tuple[str, ...]

    def sqlite_names(self) -> str:
        """An FTS5 query: every word as a prefix."""
        return " ".join(f'"{word}"*' for word in self.words)

    def sqlite_texts(self) -> str:
        """An FTS5 query: every word's stem as a prefix."""
        return " ".join(f'"{stem(word)}"*' for word in self.words)

    def postgres_names(self) -> str:
        """A ``to_tsquery('simple', ...)`` text: every word as a prefix."""
        return " & ".join(f"{word}:*" for word in self.words)

    def postgres_texts(self) -> str:
        """A ``to_tsquery('russian', ...)`` text: PostgreSQL stems each word itself."""
        return " & ".join(f"{word}:*" for word in self.words)

    def stems(self) -> tuple[str, ...]:
        return tuple(stem(word) for word in self.words)


def fold(text: str) -> str:
    """Lower-cased, ``ё`` as ``е``, Latin accents off (NFC first: a decomposed ``é`` too)."""
    return unicodedata.normalize("NFC", text).lower().translate(_FOLD)


def words_of(text: str) -> Words:
    if len(text) > MAX_QUERY:
        raise SearchQueryError(f"q: at most {MAX_QUERY} characters")
    found = tuple(dict.fromkeys(_WORD.findall(fold(text).replace("_", " "))))
    if not found:
        raise SearchQueryError("q: give a word, a phone number, an email or a @username")
    return Words(text.strip(), found[:MAX_WORDS])


@lru_cache(maxsize=1024)
def stem(word: str) -> str:
    language = "russian" if _CYRILLIC.search(word) else "english"
    import snowballstemmer  # its every language's module: on the first search, not at start

    # a stemmer keeps state while it works: one per call (searches run on several threads)
    found: str = snowballstemmer.stemmer(language).stemWord(word)
    return found or word


# What migration 0014 made outside the models (SQLite's FTS5 tables and their shadow
# tables, PostgreSQL's expression indexes): a schema comparison leaves them out.
_INDEX_TABLES = ("contact_words", "message_words")
_INDEX_INDEXES = ("ix_contacts_words", "ix_messages_words")


def in_models(name: str | None, kind: str, parents: object = None) -> bool:
    """Alembic's ``include_name``: False for the search index's own objects."""
    if name is None:
        return True
    if kind == "table":
        return not any(name == t or name.startswith(t + "_") for t in _INDEX_TABLES)
    return not (kind == "index" and name in _INDEX_INDEXES)
