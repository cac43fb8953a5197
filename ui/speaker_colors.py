"""One colour per voice, the same in every view and every session: the transcript's
speaker names and the search results' "said by". Hues step by the golden ratio from the
voice's id, so voices with near ids (the speakers of one file usually are) get hues far
apart; saturation and lightness keep every colour readable on a light background."""
from __future__ import annotations

from PySide6.QtGui import QColor

NO_VOICE = "#5f6368"
_GOLDEN = 0.6180339887498949


def speaker_color(voice_id: int | None) -> str:
    """The voice's colour as #rrggbb (grey for a line no one was found speaking)."""
    if voice_id is None:
        return NO_VOICE
    hue = (0.08 + int(voice_id) * _GOLDEN) % 1.0
    return QColor.fromHslF(hue, 0.70, 0.36).name()
