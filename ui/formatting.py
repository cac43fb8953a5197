"""Small text helpers shared by the widgets."""
from __future__ import annotations

import html
import os


def hhmmss(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def short_duration(seconds: float | None) -> str:
    """Durations in lists: m:ss under an hour, h:mm:ss above."""
    if seconds is None:
        return ""
    s = max(0, int(round(seconds)))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s left"
    return f"{s // 60} min {s % 60:02d} s left"


def snippet_html(snippet: str) -> str:
    """Search snippets mark matches with [ and ]; show them bold."""
    out = html.escape(snippet, quote=False)
    return out.replace("[", "<b>").replace("]", "</b>")


def snippet_plain(snippet: str) -> str:
    return snippet.replace("[", "").replace("]", "")


def file_name(path: str) -> str:
    return os.path.basename(path) or path


MATCH_KINDS = {"said": "Speech", "shown": "On screen", "tag": "Tag", "similar": "Similar",
               "keyword": "Keyword"}
