"""Small text helpers shared by the widgets."""
from __future__ import annotations

import html
import os


def duration_text(seconds: float | None) -> str:
    """Every duration and time into a file, in every view: m:ss, or h:mm:ss from an
    hour. Whole seconds are floored, as a player counts them, so a position reads the
    duration only at the very end."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s left"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s left"
    return f"{s // 3600} h {s % 3600 // 60:02d} min left"


def snippet_html(snippet: str) -> str:
    """Search snippets mark matches with [ and ]; show them bold."""
    out = html.escape(snippet, quote=False)
    return out.replace("[", "<b>").replace("]", "</b>")


def snippet_plain(snippet: str) -> str:
    return snippet.replace("[", "").replace("]", "")


def elided(text: str, limit: int = 80) -> str:
    """At most `limit` characters, cut in the middle (both ends tell texts apart)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def file_name(path: str) -> str:
    return os.path.basename(path) or path


# How each match type is named and coloured in the results (indexer.search kinds).
MATCH_KINDS = {"said": "Said", "shown": "Shown", "tag": "Tag", "similar": "Similar",
               "keyword": "Keyword", "face": "Face"}
MATCH_HINTS = {"said": "the words were spoken", "shown": "the words are on screen",
               "tag": "a tag of what is seen", "similar": "close in meaning or look",
               "keyword": "a keyword of the whole file", "face": "this face is on screen"}
MATCH_COLORS = {"said": "#1a62b5", "shown": "#8a4b00", "tag": "#2e7d32", "similar": "#6a3fb5",
                "keyword": "#5f6368", "face": "#b3261e"}


def match_badges_html(kinds: list[str]) -> str:
    """Coloured labels, one per way a moment matched (first = the one that placed it)."""
    out = []
    for kind in dict.fromkeys(kinds):
        color = MATCH_COLORS.get(kind, "#5f6368")
        out.append(f'<span style="background-color:{color}; color:#ffffff;">'
                   f'&nbsp;{html.escape(MATCH_KINDS.get(kind, kind))}&nbsp;</span>')
    return "&nbsp;".join(out)
