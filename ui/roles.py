"""Item data roles and alignments as plain ints, for the models' data() methods.

PySide6 resolves `Qt.DisplayRole` through its enum machinery on every access, and a view
calls data() some 30 times per cell per repaint, so role comparisons made repaints slow.
Comparing ints is free. Measured: benchmarks/README.md "GUI responsiveness while indexing".
"""
from __future__ import annotations

from PySide6.QtCore import Qt


def _int(flag) -> int:
    return int(getattr(flag, "value", flag))


DISPLAY = _int(Qt.DisplayRole)
DECORATION = _int(Qt.DecorationRole)
EDIT = _int(Qt.EditRole)
TOOLTIP = _int(Qt.ToolTipRole)
FOREGROUND = _int(Qt.ForegroundRole)
BACKGROUND = _int(Qt.BackgroundRole)
ALIGNMENT = _int(Qt.TextAlignmentRole)
USER = _int(Qt.UserRole)
HORIZONTAL = Qt.Horizontal          # headerData gets the enum itself: compare by identity

ALIGN_RIGHT_VCENTER = _int(Qt.AlignRight) | _int(Qt.AlignVCenter)
