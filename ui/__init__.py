# Any use of the widgets goes through here first: PySide6 6.12 refcount work-around.
from . import qt_compat  # noqa: F401
