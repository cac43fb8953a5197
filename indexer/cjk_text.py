"""Scripts written without spaces between words (Chinese, Japanese), for full-text search.

FTS5's unicode61 tokenizer makes one token of a run of such characters, so a word inside
a sentence ("北京" in "我们明天去北京开会") could never match. The full-text tables are
given the text with each of these characters spaced out (`spaced`, registered on every
library connection as the SQL function FTS_TEXT_FUNCTION, which the tables' triggers
call), and a query's run of them is searched as a phrase of its characters: a word is
found wherever its characters stand together. Korean is written with spaces, but its
particles and endings join the word they follow ("서울에서": in Seoul), so a query's Hangul
word matches as a prefix (`joins_endings`).
"""
from __future__ import annotations

import re

CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
CJK_RE = re.compile(f"[{CJK}]")
_ONE = re.compile(f"([{CJK}])")
FTS_TEXT_FUNCTION = "avindex_fts_text"
_HANGUL_RE = re.compile("[\uac00-\ud7a3]")


def has_cjk(text: str) -> bool:
    return bool(CJK_RE.search(text))


def spaced(text):
    """The text with a space either side of each CJK character (unchanged without any)."""
    if not isinstance(text, str) or not CJK_RE.search(text):
        return text
    return " ".join(_ONE.sub(r" \1 ", text).split())


def joins_endings(word: str) -> bool:
    """A Hangul word: matched as a prefix, its particles and endings following it."""
    return bool(_HANGUL_RE.search(word))
