"""Markdown tables for benchmark reports."""
from __future__ import annotations


def table(rows, head) -> str:
    """A Markdown table; floats shown with 3 decimals."""
    cells = [head] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (x + 2) for x in w) + "|"]
                     + [line(r) for r in cells[1:]])
