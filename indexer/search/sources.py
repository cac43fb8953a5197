"""The full-text lists search ranks, and the weights that fuse all its lists."""
from __future__ import annotations

from typing import NamedTuple


class Source(NamedTuple):
    list: str        # the ranked list's name (a key of WEIGHTS)
    fts: str         # its FTS5 table
    table: str       # the content table the FTS table indexes
    column: str      # the indexed text column
    kind: str        # what a match of it is called on a hit


SOURCES = (
    Source("said", "segments_fts", "segments", "text", "said"),
    Source("shown", "screen_text_fts", "screen_text", "text", "shown"),
    Source("tag", "tags_fts", "tags", "label", "tag"),
    Source("keyword", "keywords_fts", "keywords", "keyword", "said"),
)

BY_LIST = {s.list: s for s in SOURCES}
BY_FTS = {s.fts: s for s in SOURCES}

# The RRF constant and list weights were tuned on the dev split of
# benchmarks/search_quality.py (see benchmarks/README.md "Search"): transcript word
# matches ("said") at half the weight of meaning matches, ties broken towards the usual
# rrf_k=60 by a rule fixed in advance. "shown", "tag" and "image" had no evaluation data
# and keep weight 1.
RRF_K = 60.0
WEIGHTS = {"said": 0.5, "keyword": 0.5, "shown": 1.0, "tag": 1.0, "similar": 1.0,
           "image": 1.0}
