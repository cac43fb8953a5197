"""Keywords of a transcript, for the whole file and per time window. No DB, no Qt.

    extract_keywords(segments, window_s=60.0, top_file=10, top_window=5)
    -> [{"start": None, "end": None, "keyword": "emergency fund", "score": 1.0},   # whole file
        {"start": 0.0, "end": 58.2, "keyword": "savings account", "score": 0.8}, ...]

`segments` are dicts with start, end, text and (optionally) language, as the
speech stage produces them. Methods (``method=``):

- ``"yake"`` (default): YAKE, an unsupervised statistical extractor (term
  frequency, position, casing, spread and co-occurrence), 1-2-word keywords,
  with YAKE's stopword list for the language plus spoken fillers ("okay",
  "yeah", "euh", "halt"), and fragments of one chain dropped ("ill disposed"
  keeps "disposed young" out). A few ms per window, no model.
- ``"hybrid"``: YAKE's candidates re-ranked by sentence-embedding similarity to
  the text (``models.text_embed``) with maximal marginal relevance (MMR).
- ``"embed"``: KeyBERT's recipe without KeyBERT: stopword-bounded 1-3-word
  candidates, ranked by embedding similarity to the text with MMR.

``benchmarks/text_models.py --part keywords`` compares them (and KeyBERT with
the same embedder) on a hand-made gold list: the embedding methods were no
better than YAKE within that small list's noise, at many times the cost.
Measured: benchmarks/README.md "Keywords: YAKE against embedding methods".

Windows are a fixed grid of ``window_s`` seconds from t=0; a segment belongs to
the window its start falls in, and a window's start/end are those of its first
and last segment (so a hit can be played from where speech begins). A file
whose speech fits in one window gets only whole-file keywords. Each window is
read in its own majority language (a bilingual file gets German keywords for
its German part). Scores are in [0, 1]; the best keyword of each scope (the
file, or one window) scores 1.
"""
from __future__ import annotations

import math
import os
import re
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

DEFAULT_METHOD = "yake"
METHODS = ("yake", "hybrid", "embed")
# Longest YAKE keyword, in words. With 3, YAKE's top keywords were mostly
# fragments ("cabeza viene acompañado"); 2 scored better on the gold list.
YAKE_MAX_WORDS = 2

# YAKE's position feature (early words score better) helps on windows; long
# files pool their windows' keywords instead (see extract_keywords).
# Measured: benchmarks/README.md "Keywords: YAKE against embedding methods".
YAKE_POSITION = True
_YAKE_NO_POSITION = ["wfreq", "wrel", "tf", "wcase", "wspread"]
_POOL_PER_WINDOW = 10     # YAKE keywords per window pooled into the file's keywords

# Whisper language code -> YAKE stopword list name, where they differ.
_YAKE_LANG = {"cs": "cz"}

# Spoken-language fillers and discourse words that stopword lists (written for
# prose) miss; without them "okay", "yeah" and "euh" become top keywords.
_FILLERS = {
    "en": """okay ok yeah yep yes no um umm uh uhm er erm ah oh hmm mhm gonna wanna gotta
             kinda sorta like just really actually basically literally right well so know
             mean guess thing things stuff lot lots bit kind sort maybe pretty sure
             honestly anyway little see look let go going get got say said thank
             thanks guys""",
    "fr": """euh euhm hein ben bah bon ouais oui non voilà voila alors donc quoi genre truc
             trucs chose choses enfin bref effectivement vraiment juste peu fait faut
             regardez voir dire dit aller va vais""",
    "de": """äh ähm öh hm naja na ja nein halt eben genau mal also quasi irgendwie sozusagen
             eigentlich wirklich schon ganz bisschen ding dinge okay gut sagen gesagt bitte
             geht gehen""",
    "es": """eh em este pues bueno vale vamos o sea tipo cosa cosas entonces nada mira oye
             sí si no verdad claro realmente solo decir dicho ir""",
    "it": "ehm eh cioè allora quindi tipo niente boh insomma praticamente cosa cose",
    "pt": "é né então tipo assim aí pois bom coisa coisas",
    "nl": "eh uh ehm nou dus zeg gewoon eigenlijk ja nee",
}

_ELIDING = {"fr": ("l", "d", "qu", "c", "j", "n", "s", "m", "t", "jusqu", "lorsqu", "puisqu"),
            "it": ("l", "d", "un", "dell", "all", "dall", "nell", "sull", "c")}

# English fillers turn up in every language's speech.
_ANY_LANGUAGE_FILLERS = frozenset("okay ok yeah um uh hmm mhm".split())

_WORD = re.compile(r"[^\W\d_](?:[\w'’\-]*\w)?", re.UNICODE)
_CLAUSE = re.compile(r"[.!?;:,()\[\]\"“”«»…–—]+|\s-\s")


# ---------------------------------------------------------------- language ---
def _yake_code(language: str | None) -> str:
    lang = (language or "en").lower().split("-")[0].split("_")[0]
    return _YAKE_LANG.get(lang, lang)


@lru_cache(maxsize=64)
def stopwords(language: str | None) -> frozenset[str]:
    """YAKE's stopword list for the language (its language-neutral list when it has
    none), plus spoken fillers, lower-cased."""
    import yake
    base = os.path.join(os.path.dirname(yake.__file__), "core", "StopwordsList")
    code = _yake_code(language)
    path = os.path.join(base, f"stopwords_{code}.txt")
    if not os.path.exists(path):
        path = os.path.join(base, "stopwords_noLang.txt")
    with open(path, encoding="utf-8", errors="replace") as f:
        words = {w.strip().lower() for w in f.read().split("\n") if w.strip()}
    lang = (language or "en").lower()[:2]
    words |= set(_FILLERS.get(lang, "").split())
    if lang in _ELIDING:
        # "qu'on", "c'est", "l'un": an elided article or pronoun glued to a stopword.
        words |= {f"{e}{q}{w}" for e in _ELIDING[lang] for q in "'’" for w in list(words)}
    words |= _ANY_LANGUAGE_FILLERS
    return frozenset(words)


def _majority_language(segments: Sequence[dict], default: str | None) -> str | None:
    weight: Counter = Counter()
    for s in segments:
        if s.get("language"):
            weight[s["language"]] += len(s.get("text") or "")
    return weight.most_common(1)[0][0] if weight else default


# ---------------------------------------------------------------- extractors ---
def _valid_phrase(phrase: str, stop: frozenset[str]) -> bool:
    toks = phrase.lower().split()
    if not toks or toks[0] in stop or toks[-1] in stop:
        return False
    if len(toks) == 1 and (len(toks[0]) < 3 or toks[0] in stop):
        return False
    return all(not t.isdigit() for t in toks)


def _yake(text: str, language: str | None, top: int,
          position: bool = True) -> list[tuple[str, float]]:
    """YAKE keywords, best first, as (keyword, raw YAKE score; lower is better).
    position=False drops YAKE's early-in-the-text bonus."""
    import yake
    stop = stopwords(language)
    ex = yake.KeywordExtractor(lan=_yake_code(language), n=YAKE_MAX_WORDS, dedup_lim=0.8,
                               top=top * 3, stopwords=set(stop),
                               features=None if position else _YAKE_NO_POSITION)
    out: list[tuple[str, float]] = []
    for kw, s in ex.extract_keywords(text):
        kw = " ".join(kw.split())
        if _valid_phrase(kw, stop) and not any(_overlaps(kw, k) for k, _ in out):
            out.append((kw, float(s)))
        if len(out) == top:
            break
    return out


def _overlaps(a: str, b: str) -> bool:
    """One phrase inside the other ("ill disposed" / "ill disposed young"), two
    phrases sharing two words, or two pieces of one chain ("ill disposed" /
    "disposed young", "brake pedal" / "pedal feels"). "brake pedal" and "brake
    fluid" do not overlap."""
    ta, tb = a.lower().split(), b.lower().split()
    sa, sb = set(ta), set(tb)
    chain = len(ta) > 1 and len(tb) > 1 and (ta[-1] == tb[0] or tb[-1] == ta[0])
    return sa <= sb or sb <= sa or len(sa & sb) >= 2 or chain


def candidates(text: str, language: str | None, max_words: int = 3) -> Counter:
    """Stopword-bounded n-grams (1..max_words words) that do not cross a clause
    boundary, counted case-insensitively; keys keep the most common spelling."""
    stop = stopwords(language)
    counts: Counter = Counter()
    spelling: dict[str, Counter] = defaultdict(Counter)
    for clause in _CLAUSE.split(text):
        toks = _WORD.findall(clause)
        low = [t.lower() for t in toks]
        for i in range(len(toks)):
            if low[i] in stop:
                continue
            for n in range(1, max_words + 1):
                j = i + n
                if j > len(toks):
                    break
                if low[j - 1] in stop:
                    continue
                if n == 1 and len(low[i]) < 3:
                    continue
                key = " ".join(low[i:j])
                counts[key] += 1
                spelling[key][" ".join(toks[i:j])] += 1
    return Counter({spelling[k].most_common(1)[0][0]: c for k, c in counts.items()})


def _mmr(doc: np.ndarray, cand: np.ndarray, top: int, diversity: float,
         prior: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Maximal marginal relevance: (index, relevance) of `top` candidates that are
    close to `doc` and far from each other."""
    rel = cand @ doc
    if prior is not None:
        rel = rel * prior
    chosen: list[int] = []
    left = list(range(len(cand)))
    while left and len(chosen) < top:
        if chosen:
            red = (cand[left] @ cand[chosen].T).max(axis=1)
            score = (1 - diversity) * rel[left] - diversity * red
        else:
            score = rel[left]
        pick = left[int(np.argmax(score))]
        chosen.append(pick)
        left.remove(pick)
    return [(i, float(rel[i])) for i in chosen]


class _PhraseVectors:
    """Embeds phrases once per extract_keywords call (windows share many phrases)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, phrases: list[str], kind: str = "query") -> np.ndarray:
        new = [p for p in dict.fromkeys(phrases) if p not in self.cache]
        if new:
            for p, v in zip(new, self.embedder.embed(new, kind=kind)):
                self.cache[p] = v
        return np.stack([self.cache[p] for p in phrases]) if phrases else \
            np.zeros((0, self.embedder.dim), np.float32)


def _embed_rank(text_parts: list[str], phrases: list[str], vectors: _PhraseVectors,
                top: int, diversity: float, prior: np.ndarray | None = None
                ) -> list[tuple[str, float]]:
    if not phrases:
        return []
    parts = vectors.embedder.embed(text_parts, kind="passage")
    doc = parts.mean(axis=0)
    norm = np.linalg.norm(doc)
    if norm == 0:
        return []
    doc /= norm
    picked = _mmr(doc, vectors(phrases), top, diversity, prior)
    return [(phrases[i], rel) for i, rel in picked]


# ---------------------------------------------------------------- public API ---
def keywords_for_text(text: str | Sequence[str], language: str | None = None, top: int = 10,
                      *, method: str = DEFAULT_METHOD, embedder=None, diversity: float = 0.5,
                      _vectors: _PhraseVectors | None = None) -> list[tuple[str, float]]:
    """(keyword, score) pairs, best first; score in [0, 1], the best scores 1.

    `text` may be a list of parts (e.g. segment texts); the embedding methods embed
    each part and average, which suits long transcripts better than one long string.
    """
    parts = [text] if isinstance(text, str) else [t for t in text if t and t.strip()]
    joined = " ".join(p.strip() for p in parts)
    if not joined.strip() or top <= 0:
        return []
    if method == "yake":
        raw = _yake(joined, language, top, position=YAKE_POSITION)
        if not raw:
            return []
        best = max(min(s for _, s in raw), 1e-12)
        # YAKE's score is unbounded, lower is better: 1 / (1 + ln(score / best))
        # gives the best 1, one ten times worse 0.30, and stays in (0, 1].
        return [(kw, 1.0 / (1.0 + math.log(max(s, best) / best))) for kw, s in raw]
    if method not in METHODS:
        raise ValueError(f"unknown keyword method {method!r}; choose from {METHODS}")
    if _vectors is None:
        if embedder is None:
            from .text_embed import load_embedder
            embedder = load_embedder()
        _vectors = _PhraseVectors(embedder)
    if method == "hybrid":
        raw = _yake(joined, language, max(3 * top, 20))
        phrases = [kw for kw, _ in raw]
        # Keep a little of YAKE's order: rank r of n weighs 1 - 0.5 r/n.
        prior = 1.0 - 0.5 * np.arange(len(phrases)) / max(1, len(phrases))
    else:
        counts = candidates(joined, language)
        # Long texts: keep the most frequent (ties: longer) candidates to bound cost.
        phrases = [p for p, _ in sorted(counts.items(),
                                        key=lambda kv: (-kv[1], -len(kv[0])))[:300]]
        prior = None
    ranked = _embed_rank(parts, phrases, _vectors, top, diversity, prior)
    ranked.sort(key=lambda kv: -kv[1])
    best = ranked[0][1] if ranked else 0.0
    return [(kw, max(0.0, s / best) if best > 0 else 0.0) for kw, s in ranked]


def time_windows(segments: Iterable[dict], window_s: float) -> list[list[dict]]:
    """Segments grouped by the window_s-second grid cell their start falls in."""
    cells: dict[int, list[dict]] = defaultdict(list)
    for s in segments:
        cells[int(math.floor(max(0.0, float(s["start"])) / window_s))].append(s)
    return [cells[k] for k in sorted(cells)]


def extract_keywords(segments: Iterable[dict], *, window_s: float = 60.0, top_file: int = 10,
                     top_window: int = 5, method: str = DEFAULT_METHOD,
                     language: str | None = None, embedder=None) -> list[dict]:
    """Whole-file keywords (start/end None) followed by per-window keywords.

    `language` is used when segments carry none; otherwise each window is
    read in its own majority language. The whole-file keywords of a file
    longer than one window are pooled from its windows (the best
    ``_POOL_PER_WINDOW`` of each; a keyword's file score is the sum of its
    window scores, so what recurs wins), because YAKE run over a whole long
    transcript favours what is said in the first minutes, and any method run
    over a mixed-language file reads it with one stopword list.
    """
    segs = sorted((s for s in segments if (s.get("text") or "").strip()),
                  key=lambda s: (float(s["start"]), float(s["end"])))
    if not segs or (top_file <= 0 and top_window <= 0):
        return []
    if method not in METHODS:
        raise ValueError(f"unknown keyword method {method!r}; choose from {METHODS}")
    vectors = None
    if method != "yake":
        if embedder is None:
            from .text_embed import load_embedder
            embedder = load_embedder()
        vectors = _PhraseVectors(embedder)
    file_lang = _majority_language(segs, language)
    windows = time_windows(segs, window_s) if window_s and window_s > 0 else [segs]

    def row(start, end, kw, sc):
        return {"start": start, "end": end, "keyword": kw, "score": round(float(sc), 4)}

    if len(windows) == 1:
        return [row(None, None, kw, sc) for kw, sc in keywords_for_text(
            [s["text"] for s in segs], file_lang, top_file, method=method, _vectors=vectors)]

    per_window = max(top_window, _POOL_PER_WINDOW if top_file > 0 else 0)
    window_rows: list[dict] = []
    pool: Counter = Counter()
    spelling: dict[str, str] = {}
    for win in windows:
        lang = _majority_language(win, file_lang)
        start, end = float(win[0]["start"]), max(float(s["end"]) for s in win)
        kws = keywords_for_text([s["text"] for s in win], lang, per_window, method=method,
                                _vectors=vectors) if per_window > 0 else []
        window_rows += [row(start, end, kw, sc) for kw, sc in kws[:top_window]]
        for kw, sc in kws:
            pool[kw.lower()] += sc
            spelling.setdefault(kw.lower(), kw)

    file_kws: list[tuple[str, float]] = []
    for key, sc in pool.most_common():
        if len(file_kws) == top_file:
            break
        if not any(_overlaps(key, k.lower()) for k, _ in file_kws):
            file_kws.append((spelling[key], sc))
    best = file_kws[0][1] if file_kws else 1.0
    file_kws = [(kw, sc / best) for kw, sc in file_kws]
    return [row(None, None, kw, sc) for kw, sc in file_kws] + window_rows
