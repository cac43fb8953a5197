"""Work-around for a reference-counting bug of PySide6 6.12.0 on Python < 3.12.

PySide6 6.12.0 returns None, True and False from its methods without taking a
reference (void methods such as QLabel.setText, and Signal.emit()). That is
harmless where those objects are immortal (Python >= 3.12, PEP 683), but on
Python 3.11 every call drops a reference, and after a few thousand calls --
seconds to minutes into indexing -- the process aborts with "Fatal Python error:
none_dealloc" (or bool_dealloc). PySide6 6.11.3 does not have the bug.

Where the bug is detected we do what Python 3.12 does: give these three
singletons a refcount so large that no leak can ever bring it to zero.
"""
from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject

PROBES = 16
_HEADROOM = 1 << 40        # ~10^12 leaked calls before it could matter


def _leaks() -> bool:
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBES):
        probe.setObjectName("probe")     # a void method: returns None
    return before - sys.getrefcount(None) >= PROBES


def _immortalize(obj) -> None:
    # CPython < 3.12 object layout: ob_refcnt is the first field (Py_ssize_t).
    refcnt = ctypes.c_ssize_t.from_address(id(obj))
    refcnt.value += _HEADROOM


def install() -> bool:
    """Returns True when the work-around was needed (and applied)."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if getattr(sys, "_avindex_pyside_refcount_fix", False):
        return True
    if not _leaks():
        return False
    for obj in (None, True, False):
        _immortalize(obj)
    sys._avindex_pyside_refcount_fix = True
    return True


install()
