"""Words in scripts that FTS5's unicode61 tokenizer does not cut into words.

Chinese, Japanese, Thai, Lao, Khmer and Burmese are written without spaces between words,
and unicode61 makes one token of a run of such letters, so a word inside a sentence ("北京"
in "我们明天去北京开会") could never match. The full-text tables are given the text with
each of these letters spaced out (`spaced`, registered on every library connection as the
SQL function FTS_TEXT_FUNCTION, which the tables' triggers call), and a query's run of them
is searched as the phrase of its letters: a word is found wherever they stand together.
(Combining marks, Thai vowel signs among them, are no token to unicode61, so a phrase is
of the letters between them.) Korean is written with spaces, but its particles and endings
join the word they follow ("서울에서": in Seoul), so a query's Hangul word matches as a
prefix (`joins_endings`).
"""
from __future__ import annotations

import re
import unicodedata

# Han, kana: what subtitles may also break anywhere (indexer.subtitles)
CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
CJK_RE = re.compile(f"[{CJK}]")


def _letters(lo: int, hi: int) -> str:
    """The letters and digits of a block, as a regex class body (marks left out)."""
    return "".join(re.escape(chr(c)) for c in range(lo, hi + 1)
                   if unicodedata.category(chr(c))[0] in "LN")


# Thai, Lao, Burmese, Khmer letters: spaced like CJK (their marks are not letters)
UNSPACED = CJK + "".join(_letters(lo, hi) for lo, hi in
                         ((0x0E00, 0x0E7F), (0x0E80, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF)))
_ANY = re.compile(f"[{UNSPACED}]")
_ONE = re.compile(f"([{UNSPACED}])")
FTS_TEXT_FUNCTION = "avindex_fts_text"
_HANGUL_RE = re.compile("[\uac00-\ud7a3]")


def has_unspaced(text: str) -> bool:
    return bool(_ANY.search(text))


def spaced(text):
    """The text with a space either side of each UNSPACED letter (unchanged without any)."""
    if not isinstance(text, str) or not _ANY.search(text):
        return text
    return " ".join(_ONE.sub(r" \1 ", text).split())


def joins_endings(word: str) -> bool:
    """A Hangul word: matched as a prefix, its particles and endings following it."""
    return bool(_HANGUL_RE.search(word))
