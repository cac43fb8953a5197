"""The lists search ranks and fuses, as the stages declare them (indexer.stages: each
stage's `search_lists`), and the fusion's constant."""
from __future__ import annotations

from typing import NamedTuple

from indexer.stages import SEARCH_LISTS


class Source(NamedTuple):
    list: str        # the ranked list's name (a key of WEIGHTS)
    fts: str         # its FTS5 table
    table: str       # the content table the FTS table indexes
    column: str      # the indexed text column
    kind: str        # what a match of it is called on a hit


# full-text lists; the vector lists ("similar", "image") are ranked by indexer.search.vectors
SOURCES = tuple(Source(lst.name, lst.fts, lst.table, lst.column, lst.kind or lst.name)
                for lst in SEARCH_LISTS if lst.fts)

BY_LIST = {s.list: s for s in SOURCES}

# Short texts (what is shown, tags) whose single-word matches may start a moment in
# hybrid search only where that moment holds every word of the query (fulltext.fts_lists).
TENTATIVE_LISTS = frozenset({"shown", "tag"})
BY_FTS = {s.fts: s for s in SOURCES}

# The RRF constant, the weights of the said, keyword and meaning lists and the coverage
# weight were learnt by grid search on the dev splits of both spoken benchmarks at once
# (benchmarks/fusion_weights.py: search_quality's paraphrases and spoken_search's real
# recorded sentences; benchmarks/README.md "Fusion weights learnt on both dev splits"):
# transcript word matches ("said") and keywords at a quarter of the weight of meaning
# matches, plus the coverage term. "shown", "tag" and "image" had no evaluation data and
# keep weight 1.
RRF_K = 60.0
WEIGHTS = {lst.name: lst.weight for lst in SEARCH_LISTS}
# A moment's score gains this times the share of the query's words (by idf) it holds
# (moments.fuse), learnt with the weights above.
COVERAGE_WEIGHT = 0.02
