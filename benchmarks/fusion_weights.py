"""The fusion's constants learnt on both spoken benchmarks' dev splits at once, then
measured on both test splits.

    .venv/bin/python -m benchmarks.fusion_weights          # grid on dev, then test (~15 min)
    .venv/bin/python -m benchmarks.fusion_weights --test-only   # the shipped constants on test

Hybrid search fuses its ranked lists by weighted reciprocal rank (indexer.search.moments:
`sum_w w / (rrf_k + rank)`, plus a coverage term: the share of the query words' idf a
moment holds). benchmarks.search_quality tunes them on its own 34 dev queries, which are
mostly paraphrases of espeak passages; benchmarks.spoken_search's 159 dev queries are the
rarest words of real recorded sentences in five languages, with the moment's time judged
(+-2 s). Settings chosen on one set alone do not carry to the other (benchmarks/README.md,
"Finding the right moment"), so here one grid is scored on both dev splits: the mean of
the two sets' hybrid P@1 (each set counts the same, whatever its size), ties broken by
the mean MRR and then by the distance to the shipped defaults, a rule fixed before the
run. Both libraries are the cached ones of those benchmarks (run them first to build them).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import search_quality as SQ  # noqa: E402
from benchmarks import spoken_search as SP  # noqa: E402
from benchmarks.markdown import table  # noqa: E402

GRID = {"rrf_k": (10, 30, 60, 100), "said": (0.25, 0.5, 1.0), "keyword": (0.0, 0.25, 0.5),
        "similar": (0.5, 1.0, 2.0), "coverage": (0.0, 0.01, 0.02, 0.05)}


class _Set:
    """One benchmark split: its library, queries and relevance rule."""

    def __init__(self, name: str, store, queries: list[dict], relevant):
        self.name, self.store, self.queries, self.relevant = name, store, queries, relevant

    def score(self, embedder, mode: str = "hybrid", **kw) -> dict:
        from indexer.search import search
        p1, rr = [], []
        for q in self.queries:
            hits = search(self.store, q["text"], mode=mode, embedder=embedder, limit=10, **kw)
            rel = [self.relevant(h, q) for h in hits]
            p1.append(float(bool(rel) and rel[0]))
            first = next((i for i, r in enumerate(rel) if r), None)
            rr.append(0.0 if first is None else 1.0 / (first + 1))
        return {"P@1": float(np.mean(p1)), "MRR": float(np.mean(rr)), "n": len(self.queries)}


def _sets(split: str) -> list[_Set]:
    from indexer.store import Store
    meta = json.loads((SQ.CACHE / "meta.json").read_text())
    sq = [q for q in SQ.queries(meta) if q["split"] == split]
    out = [_Set(f"search_quality {split}", Store(SQ.CACHE / "lib.db"), sq,
                lambda h, q: SQ.relevant(h, q["where"]))]
    every = SP.load()
    files = [f for f in every if f["split"] == split]
    lib = SP.CACHE / f"avindex-{split}.db"
    if not lib.exists():
        raise SystemExit(f"{lib} is missing: run `python -m benchmarks.spoken_search` first")
    store = Store(lib)
    mid = {Path(m["path"]).name: m["id"] for m in store.all_media()}
    out.append(_Set(f"spoken_search {split}", store, SP.make_queries(files, every),
                    lambda h, q: h.media_id == mid[q["file"]]
                    and abs(h.start - q["start"]) <= SP.TOLERANCE_S))
    return out


def _distance(s: dict) -> float:
    from indexer.search.sources import RRF_K, WEIGHTS
    return (abs(np.log(s["rrf_k"] / RRF_K)) + abs(s["said"] - WEIGHTS["said"])
            + abs(s["keyword"] - WEIGHTS["keyword"]) + abs(s["similar"] - WEIGHTS["similar"])
            + s["coverage"] * 20)


def _kwargs(s: dict) -> dict:
    return {"rrf_k": s["rrf_k"], "weights": {k: s[k] for k in ("said", "keyword", "similar",
                                                                "coverage")}}


def tune(sets: list[_Set], embedder) -> tuple[dict, list]:
    grid = []
    for values in itertools.product(*GRID.values()):
        s = dict(zip(GRID, values))
        scores = [st.score(embedder, **_kwargs(s)) for st in sets]
        grid.append((s, scores))
        print(json.dumps(s), " ".join(f"{r['P@1']:.3f}/{r['MRR']:.3f}" for r in scores),
              flush=True)
    grid.sort(key=lambda g: (-round(np.mean([r["P@1"] for r in g[1]]), 6),
                             -round(np.mean([r["MRR"] for r in g[1]]), 6), _distance(g[0])))
    return grid[0][0], grid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--test-only", action="store_true",
                    help="no grid: the shipped constants on both test splits")
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    from indexer.search.sources import COVERAGE_WEIGHT, RRF_K, WEIGHTS
    from models.text_embed import load_embedder
    embedder = SQ.CachedEmbedder(load_embedder())
    shipped = {"rrf_k": RRF_K, "said": WEIGHTS["said"], "keyword": WEIGHTS["keyword"],
               "similar": WEIGHTS["similar"], "coverage": COVERAGE_WEIGHT}
    report: dict = {"shipped": shipped}
    best = shipped
    if not a.test_only:
        best, grid = tune(_sets("dev"), embedder)
        report["best"] = best
        report["top"] = [(s, sc) for s, sc in grid[:10]]
        print("best on dev:", json.dumps(best))
    rows = []
    for split in ("dev", "test"):
        for st in _sets(split):
            for label, mode, s in (("full text only", "text", shipped),
                                   ("semantic only", "semantic", shipped),
                                   ("hybrid, shipped", "hybrid", shipped),
                                   ("hybrid, tuned on both devs", "hybrid", best)):
                if a.test_only and label.endswith("devs"):
                    continue
                r = st.score(embedder, mode, **_kwargs(s))
                report[f"{st.name}/{label}"] = r
                rows.append([st.name, label, r["P@1"], r["MRR"], r["n"]])
    print(table(rows, ["set", "method", "P@1", "MRR", "queries"]))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
