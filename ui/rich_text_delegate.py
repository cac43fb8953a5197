"""Item delegate that renders a cell's text as HTML (bold search matches, badges)."""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAbstractTextDocumentLayout, QPalette, QTextDocument, QTextOption
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

HTML_ROLE = Qt.UserRole + 10
DOCUMENT_CACHE = 400      # laid-out documents kept: a repaint or scroll reuses them


class RichTextDelegate(QStyledItemDelegate):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._docs: OrderedDict[tuple, QTextDocument] = OrderedDict()

    def _document(self, option, html: str) -> QTextDocument:
        key = (html, option.font.key())
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        doc = QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setDocumentMargin(0)
        opt = QTextOption()
        opt.setWrapMode(QTextOption.NoWrap)
        doc.setDefaultTextOption(opt)
        doc.setHtml(html)
        self._docs[key] = doc
        if len(self._docs) > DOCUMENT_CACHE:
            self._docs.popitem(last=False)
        return doc

    def paint(self, painter, option, index):
        html = index.data(HTML_ROLE)
        if html is None:
            return super().paint(painter, option, index)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else QApplication.style()
        style.drawControl(QStyle.CE_ItemViewItem, opt, painter, opt.widget)
        doc = self._document(opt, html)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        group = QPalette.Active if opt.state & QStyle.State_Active else QPalette.Inactive
        role = QPalette.HighlightedText if opt.state & QStyle.State_Selected else QPalette.Text
        ctx.palette.setColor(QPalette.Text, opt.palette.color(group, role))
        rect = style.subElementRect(QStyle.SE_ItemViewItemText, opt, opt.widget)
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
