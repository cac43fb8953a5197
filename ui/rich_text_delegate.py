"""Item delegate that renders a cell's text as HTML (bold search matches, badges).

With `follow_match`, a line too long for its column that would hide its first bold run
(a search snippet's first match) loses words from its start ("…" in their place), so
the match shows with the words before it that fit: a hit's line, not its first half;
and a line still too long ends at a whole word, "…" after it.
"""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import (QAbstractTextDocumentLayout, QFont, QFontMetricsF, QPalette,
                           QTextCursor, QTextDocument, QTextOption)
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

HTML_ROLE = Qt.UserRole + 10
DOCUMENT_CACHE = 400      # laid-out documents kept: a repaint or scroll reuses them
MATCH_AT = 0.7            # a followed match ends at most this far across its column
ELLIPSIS = "…"


class RichTextDelegate(QStyledItemDelegate):
    def __init__(self, parent=None, *, follow_match: bool = False):
        super().__init__(parent)
        self.follow_match = follow_match
        self._docs: OrderedDict[tuple, QTextDocument] = OrderedDict()

    def _cached(self, key: tuple, make) -> QTextDocument:
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        doc = self._docs[key] = make()
        if len(self._docs) > DOCUMENT_CACHE:
            self._docs.popitem(last=False)
        return doc

    def _document(self, option, html: str) -> QTextDocument:
        def make() -> QTextDocument:
            doc = QTextDocument()
            doc.setDefaultFont(option.font)
            doc.setDocumentMargin(0)
            opt = QTextOption()
            opt.setWrapMode(QTextOption.NoWrap)
            doc.setDefaultTextOption(opt)
            doc.setHtml(html)
            return doc
        return self._cached((html, option.font.key()), make)

    def _fitted(self, option, html: str, width: float) -> QTextDocument:
        """The document, or (follow_match) a copy fitted to `width` (clipped_to_match)."""
        doc = self._document(option, html)
        if not self.follow_match or doc.idealWidth() <= width:
            return doc
        return self._cached((html, option.font.key(), int(width)),
                            lambda: clipped_to_match(doc, width))

    def paint(self, painter, option, index):
        html = index.data(HTML_ROLE)
        if html is None:
            return super().paint(painter, option, index)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else QApplication.style()
        style.drawControl(QStyle.CE_ItemViewItem, opt, painter, opt.widget)
        rect = style.subElementRect(QStyle.SE_ItemViewItemText, opt, opt.widget)
        doc = self._fitted(opt, html, rect.width() - 2)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        group = QPalette.Active if opt.state & QStyle.State_Active else QPalette.Inactive
        role = QPalette.HighlightedText if opt.state & QStyle.State_Selected else QPalette.Text
        ctx.palette.setColor(QPalette.Text, opt.palette.color(group, role))
        painter.save()
        top = rect.top() + max(0, (rect.height() - doc.size().height()) / 2)
        painter.translate(rect.left() + 2, top)
        painter.setClipRect(0, 0, rect.width() - 2, rect.height())
        doc.documentLayout().draw(painter, ctx)
        painter.restore()

    def sizeHint(self, option, index):
        html = index.data(HTML_ROLE)
        if html is None:
            return super().sizeHint(option, index)
        doc = self._document(option, html)
        return QSize(int(doc.idealWidth()) + 6, int(doc.size().height()) + 4)


def _x(doc: QTextDocument, pos: int) -> float:
    """Where character position `pos` of a one-line document lies, in pixels."""
    doc.idealWidth()                            # lays it out, if not yet
    block = doc.findBlock(pos)
    layout = block.layout()
    at = pos - block.position()
    line = layout.lineForTextPosition(at)
    if not line.isValid():
        return 0.0
    x = line.cursorToX(at)
    return float(x[0] if isinstance(x, tuple) else x)


def first_bold(doc: QTextDocument) -> tuple[int, int] | None:
    """(start, end) character positions of the document's first bold run, or None."""
    cursor = QTextCursor(doc)
    start = None
    for i in range(doc.characterCount() - 1):
        cursor.setPosition(i + 1)               # the format of the character before
        bold = cursor.charFormat().fontWeight() >= QFont.Bold
        if bold and start is None:
            start = i
        elif not bold and start is not None:
            return start, i
    return (start, doc.characterCount() - 1) if start is not None else None


def clipped_to_match(doc: QTextDocument, width: float) -> QTextDocument:
    """`doc`, or a copy that fits `width` px: without its first words (ELLIPSIS instead)
    when its first bold run would end past MATCH_AT x `width` (as many words before the
    match are kept as fit), and ending at its last whole word that fits, ELLIPSIS after
    it, when it is still too wide (never before the match's end)."""
    mark = QFontMetricsF(doc.defaultFont()).horizontalAdvance(ELLIPSIS)
    run = first_bold(doc)
    out, keep = doc, run[1] if run else 0
    if run is not None and _x(doc, run[1]) > width * MATCH_AT:
        text, end = doc.toPlainText(), _x(doc, run[1])
        cut = run[0]
        for i in range(1, run[0] + 1):      # the first word start that makes it fit
            if text[i - 1].isspace() and not text[i].isspace() and \
                    end - _x(doc, i) <= width * MATCH_AT - mark:
                cut = i
                break
        out = _replaced(doc, 0, cut)
        keep = run[1] - cut + len(ELLIPSIS)
    text = out.toPlainText()
    if _x(out, len(text)) <= width:
        return out
    for i in range(len(text) - 1, keep, -1):  # the last word end that leaves room for "…"
        if text[i].isspace() and not text[i - 1].isspace() and _x(out, i) + mark <= width:
            return _replaced(out, i, len(text))
    return out


def _replaced(doc: QTextDocument, start: int, end: int) -> QTextDocument:
    """A copy of `doc` with characters start..end replaced by ELLIPSIS."""
    copy = doc.clone()
    cursor = QTextCursor(copy)
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.KeepAnchor)
    cursor.insertText(ELLIPSIS)
    return copy
