"""Word forms: the other forms of a query's words that the library holds ("expulsés" for
"expulsé", "walks" and "walked" for "walking", "пользователей" for "пользователи"), so
full text finds a word in any of its inflections, in every language the library speaks.

A query word is stemmed (Snowball) in each of the library's languages; the words of an
FTS table's vocabulary that begin like it and have the same stem in that language are
its forms. They are read from the vocabulary FTS5 already keeps (fts5vocab), so no
second index is needed and every library, however old, gets them. Forms are cached
until the library changes (indexer.search.library_cache).

Tags are matched by everyday words too: "dog" finds the 120 breeds the image classes
name, "people" the "person" tag (models.vision.tag_words; `tag_labels`).
"""
from __future__ import annotations

import functools
import os

from indexer.search.library_cache import cached
from indexer.search.number_words import number_forms
from indexer.search.query_text import STOPWORDS
from indexer.store import Store
from indexer.store import search_reads as reads

# Whisper's language codes -> Snowball's algorithms
STEMMERS = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech",
    "da": "danish", "nl": "dutch", "en": "english", "et": "estonian", "fi": "finnish",
    "fr": "french", "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian",
    "id": "indonesian", "ga": "irish", "it": "italian", "lt": "lithuanian", "ne": "nepali",
    "no": "norwegian", "nn": "norwegian", "fa": "persian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian",
    "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}
DEFAULT_LANGUAGES = ("en",)   # queries are often English whatever the library speaks
MIN_WORD = 4       # shorter words are matched as typed ("les", "is", "дом")
MIN_PREFIX = 3     # the shortest shared beginning a form is looked for under
MAX_SCAN = 500     # vocabulary terms looked at per word, table and language
MAX_FORMS = 16     # forms kept per word (the most common survive in vocabulary order)


@functools.lru_cache(maxsize=None)
def _stemmer(language: str):
    import snowballstemmer
    return snowballstemmer.stemmer(STEMMERS[language])


@functools.lru_cache(maxsize=50000)
def stem(language: str, word: str) -> str:
    """The Snowball stem of a (folded) word in a language (see STEMMERS)."""
    return _stemmer(language).stemWord(word)


def languages(store: Store) -> tuple[str, ...]:
    """The languages whose stemmers apply: the library's (those Snowball has), and
    English."""
    def read():
        found = {lang.split("-")[0].lower() for lang in reads.media_languages(store)}
        return tuple(sorted((found | set(DEFAULT_LANGUAGES)) & set(STEMMERS)))
    return cached(store, ("languages",), read)


def forms(store: Store, fts: str, word: str) -> tuple[str, ...]:
    """The other forms of a folded word found in an FTS table's vocabulary (the word
    itself left out); none for short words and stopwords."""
    if len(word) < MIN_WORD or word in STOPWORDS or not word.isalpha():
        return ()
    return cached(store, ("forms", fts, word), lambda: _read_forms(store, fts, word))


def _read_forms(store: Store, fts: str, word: str) -> tuple[str, ...]:
    found: list[str] = []
    for lang in languages(store):
        s = stem(lang, word)
        prefix = os.path.commonprefix([word, s])
        if len(prefix) < MIN_PREFIX:
            continue
        for term in reads.vocabulary(store, fts, prefix, MAX_SCAN):
            if term != word and term not in found and stem(lang, term) == s:
                found.append(term)
                if len(found) >= MAX_FORMS:
                    return tuple(found)
    return tuple(found)


def query_forms(store: Store, query: str) -> dict[str, tuple[str, ...]]:
    """Folded word -> its other forms in any of the library's full-text tables, for the
    query's single words (not its "phrases" or prefix* words), and its other spelling
    as a number ("cero" -> "0", indexer.search.number_words)."""
    from indexer.search.query_text import query_patterns
    from indexer.search.sources import SOURCES
    _, terms = query_patterns(query, False)
    out = {}
    for t, prefix in terms:
        if prefix or t in out or " " in t:      # " ": a CJK word, which has no other forms
            continue
        found: list[str] = []
        for src in SOURCES:
            found += [f for f in forms(store, src.fts, t) if f not in found]
        if found:
            out[t] = tuple(found[:MAX_FORMS])
    return merged(out, number_forms(query, languages(store)))


def tag_labels(query: str) -> dict[str, tuple[str, ...]]:
    """Folded word -> the (folded) tag labels an everyday word of the query covers,
    the word itself left out ("dogs" -> "chihuahua", "golden retriever", ...)."""
    from indexer.search.query_text import fold, query_patterns
    from models.vision.tag_words import classes_for
    _, terms = query_patterns(query, False)
    out = {}
    for t, prefix in terms:
        if not prefix and t not in out:
            labels = tuple(dict.fromkeys(fold(x).replace('"', " ") for x in classes_for(t)))
            if labels := tuple(x for x in labels if x != t):
                out[t] = labels
    return out


def merged(*forms: dict) -> dict[str, tuple[str, ...]]:
    """Word -> forms of several such maps, in order, without repeats."""
    out: dict[str, tuple[str, ...]] = {}
    for f in forms:
        for word, alts in f.items():
            out[word] = tuple(dict.fromkeys(out.get(word, ()) + tuple(alts)))
    return out
