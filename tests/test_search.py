"""The search service (indexer.search): full text + meaning + example images, fused.

One small real library on disk is built per module: transcripts of the hand-written
passages in benchmarks/data/retrieval_eval.json (en/fr/de/es) with real multilingual
USE embeddings, tags, on-screen text, and keyframes whose features are EfficientNet
features of Debian opencv-doc photos.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from indexer.search import code_index as hashing

from indexer import search as S
from indexer.search import Filters, group_by_file, search
from indexer.store import Store
from indexer.store.vec_codec import int8_blob

ROOT = Path(__file__).resolve().parents[1]
EVAL = json.loads((ROOT / "benchmarks/data/retrieval_eval.json").read_text(encoding="utf-8"))
PASSAGES = {p["id"]: p for p in EVAL["passages"]}
PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")
PHOTO_NAMES = ["baboon.jpg", "fruits.jpg", "building.jpg", "butterfly.jpg", "home.jpg",
               "apple.jpg", "messi5.jpg", "orange.jpg", "squirrel_cls.jpg", "starry_night.jpg"]
needs_photos = pytest.mark.skipif(not (PHOTOS / "butterfly.jpg").is_file(),
                                  reason="needs Debian opencv-doc sample data")

# path, kind, language, duration, added, mtime (epoch), passages
MEDIA = [
    ("/lib/kitchen/risotto.mp4", "video", "en", 200.0, "2024-01-10", 1704844800,
     ["p01", "p02", "p09"]),
    ("/lib/money/podcast.mp3", "audio", "en", 400.0, "2025-06-01", 1748736000,
     ["p04", "p10", "p27"]),
    ("/lib/voyage/greve.mp4", "video", "fr", 150.0, "2025-03-01", 1740787200,
     ["p29", "p30", "p32"]),
    ("/lib/reise/alpen.m4a", "audio", "de", 90.0, "2025-02-01", 1738368000, ["p33", "p34"]),
    ("/lib/kitchen/tapas.mp4", "audio+video", "es", 100.0, "2023-05-05", 1683244800,
     ["p37", "p38"]),
]


@pytest.fixture(scope="module")
def embedder():
    from models.text_embed import load_embedder
    return load_embedder()


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?:])\s+", text) if s.strip()]


def index_transcript(store: Store, media_id: int, passages: list[str], language: str,
                     embedder, gap: float = 12.0) -> list[tuple[str, float, float]]:
    """Segments of ~4 s per sentence, windows + USE embeddings via indexer.stages.text.
    Returns (passage id, start, end) of each passage."""
    from indexer.stages.text import transcript_windows
    segs, spans, t = [], [], 1.0
    for pid in passages:
        t0 = t
        for sent in _sentences(PASSAGES[pid]["text"]):
            dur = 1.0 + 0.25 * len(sent.split())
            segs.append({"start": t, "end": t + dur, "text": sent,
                         "language": PASSAGES[pid]["language"],
                         "words": [{"start": t, "end": t + dur, "word": sent}]})
            t += dur + 0.3
        spans.append((pid, t0, t))
        t += gap
    store.save_transcript(media_id, language, segs)
    windows = transcript_windows(store.transcript(media_id))
    emb = embedder.embed([w["text"] for w in windows], kind="passage")
    store.save_text_index(media_id, windows, emb, [])
    return spans


@pytest.fixture(scope="module")
def lib(tmp_path_factory, embedder, classifier):
    path = tmp_path_factory.mktemp("search") / "lib.db"
    store = Store(path)
    ids, spans = {}, {}
    for i, (p, kind, lang, dur, added, mtime, pids) in enumerate(MEDIA):
        mid = store.add_media(p, f"fp{i}", 1000, mtime * 10 ** 9)
        store.save_probe(mid, {"duration": dur, "container": "mp4", "streams": [], "kind": kind},
                         [])
        store.db.execute("UPDATE media SET added_at = ? WHERE id = ?", (added + "T12:00:00.000Z",
                                                                         mid))
        spans[mid] = index_transcript(store, mid, pids, lang, embedder)
        ids[p] = mid
    m1, m3 = ids["/lib/kitchen/risotto.mp4"], ids["/lib/voyage/greve.mp4"]
    photos = {}
    if (PHOTOS / "butterfly.jpg").is_file():
        for name in PHOTO_NAMES:
            img = cv2.imread(str(PHOTOS / name))
            if img is not None:
                photos[name] = img
    feats = classifier.features(list(photos.values())) if photos else []
    names = list(photos)
    for mid, part in ((m1, names[:5]), (m3, names[5:])):
        kfs, fs = [], []
        for j, name in enumerate(part):
            kfs.append({"time": 10.0 * j, "shot": j, "thumbnail": f"{mid}/{j:04d}.jpg",
                        "kind": "video"})
            fs.append(feats[names.index(name)])
        tags = [{"start": 10.0, "end": 20.0, "label": "dog", "source": "imagenet",
                 "score": 0.9}] if mid == m1 else []
        screen = [{"start": 30.0, "end": 40.0, "text": "Quarterly Budget 2024",
                   "confidence": 0.95}] if mid == m1 else []
        store.save_visual(mid, kfs, tags, screen, fs if fs else None)
    yield {"store": store, "ids": ids, "spans": spans, "photos": photos, "path": path}
    store.close()


def paths(hits):
    return {h.path for h in hits}


# ---- full text ------------------------------------------------------------------------
def test_phrase_query_needs_the_words_in_order(lib):
    st = lib["store"]
    hits = search(st, '"another ladle"', mode="text")
    assert hits and all("[another ladle]" in h.snippet.lower() or "[another] [ladle]"
                        in h.snippet.lower() for h in hits), [h.snippet for h in hits]
    assert search(st, '"ladle another"', mode="text") == []
    # the same two words, unquoted, match anywhere in a segment
    assert search(st, "ladle another", mode="text")


def test_prefix_query(lib):
    hits = search(lib["store"], "risot*", mode="text")
    assert hits and hits[0].path == "/lib/kitchen/risotto.mp4"
    assert "[risotto]" in hits[0].snippet.lower()
    assert search(lib["store"], "risot", mode="text") == []        # without * it is a whole word


def test_non_english_queries(lib, embedder):
    st = lib["store"]
    # German compound, French accents (diacritics folded both ways), Spanish
    assert paths(search(st, "Wetterbericht", mode="text")) == {"/lib/reise/alpen.m4a"}
    assert paths(search(st, "grève cheminots", mode="text")) == {"/lib/voyage/greve.mp4"}
    assert paths(search(st, "greve cheminots", mode="text")) == {"/lib/voyage/greve.mp4"}
    assert paths(search(st, "ayuntamiento", mode="text")) == {"/lib/kitchen/tapas.mp4"}
    # cross-lingual meaning: an English question finds the French passage
    hits = search(st, "railway strike disrupts trains around Paris", embedder=embedder, limit=3)
    assert hits and hits[0].path == "/lib/voyage/greve.mp4"
    assert "similar" in hits[0].kinds


def test_snippets_are_highlighted(lib, embedder):
    st = lib["store"]
    hits = search(st, "sourdough fermentation", embedder=embedder, limit=5)
    top = hits[0]
    assert top.path == "/lib/kitchen/risotto.mp4"
    assert "[sourdough]" in top.snippet.lower() or "[fermentation]" in top.snippet.lower()
    assert set(top.kinds) >= {"said", "similar"}
    shown = search(st, "quarterly budget", mode="text")
    assert shown[0].kind == "shown" and shown[0].snippet == "[Quarterly] [Budget] 2024"
    assert 30.0 <= shown[0].start <= 40.0


def test_tag_and_keyword_sources(lib):
    hits = search(lib["store"], "dog", mode="text")
    tag = [h for h in hits if h.kind == "tag"]
    assert tag and tag[0].path == "/lib/kitchen/risotto.mp4" and tag[0].snippet == "[dog]"


def test_similarity_floor_unrelated_queries_find_nothing(lib, embedder):
    st = lib["store"]
    for q in ["xqzvbt plorf gnarb", "qwpoeiruty zmxncbv", "fjdksla hgkdls"]:
        assert search(st, q, embedder=embedder) == [], q
    # meaning-only search of an off-topic question stays empty too
    unrelated = EVAL["unrelated"]
    for q in unrelated["off_topic"][:4] + unrelated["near_miss"][:4]:
        hits = search(st, q, embedder=embedder, mode="semantic")
        assert all(h.similarity >= 0.30 for h in hits)


def test_relaxed_words_do_not_surface_moments_alone(lib, embedder):
    # "the" and "about" are stopwords; "weather" occurs nowhere; "people" is a stopword:
    # nothing meaningful matches, so nothing comes back even though single words occur.
    assert search(lib["store"], "what did people say about submarine warfare",
                  embedder=embedder) == []


def test_a_rare_word_surfaces_a_moment_in_hybrid_search(lib, embedder):
    # not every word matches and the meaning is nowhere near the floor, but one word of
    # the query occurs in one file only: hybrid search shows that moment
    hits = search(lib["store"], "Wetterbericht qwpoeiruty", embedder=embedder)
    assert [h.path for h in hits] == ["/lib/reise/alpen.m4a"]
    assert "[Wetterbericht]" in hits[0].snippet


def test_common_words_are_ranked_over_a_sample(lib, monkeypatch):
    """A word in more rows than FTS_RANK_ALL_MAX is ranked over the newest matches only,
    and what comes back still matches."""
    from indexer.search import fulltext
    monkeypatch.setattr(fulltext, "FTS_RANK_ALL_MAX", 5)
    monkeypatch.setattr(fulltext, "FTS_SAMPLE", 8)
    hits = search(lib["store"], "the", limit=5, mode="text")
    assert 0 < len(hits) <= 5 and all("[the]" in h.snippet.lower() for h in hits)


def test_snippet_marks_phrases_prefixes_and_folded_words():
    snip = S.make_snippet("Le café était très bon, un très bon café.", '"très bon" caf*')
    assert snip == "Le [café] était [très bon], un [très bon] [café]."
    assert S.make_snippet("Élan vital", "elan") == "[Élan] vital"
    long = " ".join(f"w{i}" for i in range(60)) + " target " + " ".join(f"v{i}" for i in range(60))
    cut = S.make_snippet(long, "target")
    assert cut.startswith("…") and cut.endswith("…") and "[target]" in cut


# ---- filters ------------------------------------------------------------------------------
ALL = {m[0] for m in MEDIA}


@pytest.mark.parametrize("filters, expect", [
    (Filters(kind="audio"), {"/lib/money/podcast.mp3", "/lib/reise/alpen.m4a"}),
    (Filters(kind="video"), {"/lib/kitchen/risotto.mp4", "/lib/voyage/greve.mp4",
                             "/lib/kitchen/tapas.mp4"}),
    (Filters(language="fr"), {"/lib/voyage/greve.mp4"}),
    (Filters(tag="Dog"), {"/lib/kitchen/risotto.mp4"}),
    (Filters(folder="/lib/kitchen"), {"/lib/kitchen/risotto.mp4", "/lib/kitchen/tapas.mp4"}),
    (Filters(folder="/lib/kitchen/"), {"/lib/kitchen/risotto.mp4", "/lib/kitchen/tapas.mp4"}),
    (Filters(since="2025-01-01"), {"/lib/money/podcast.mp3", "/lib/voyage/greve.mp4",
                                   "/lib/reise/alpen.m4a"}),
    (Filters(until="2025-01-01"), {"/lib/kitchen/risotto.mp4", "/lib/kitchen/tapas.mp4"}),
    (Filters(since="2025-02-15", date_field="modified"), {"/lib/money/podcast.mp3",
                                                          "/lib/voyage/greve.mp4"}),
    (Filters(min_duration=150), {"/lib/kitchen/risotto.mp4", "/lib/money/podcast.mp3",
                                 "/lib/voyage/greve.mp4"}),
    (Filters(max_duration=100), {"/lib/reise/alpen.m4a", "/lib/kitchen/tapas.mp4"}),
    (Filters(kind="audio", language="de"), {"/lib/reise/alpen.m4a"}),
])
def test_each_filter_applies_to_text_and_meaning(lib, embedder, filters, expect):
    st = lib["store"]
    # meaning: no floor, so every window is a candidate; the filter must leave exactly
    # the matching files, and as many moments as the limit allows
    sem = search(st, "an everyday story", embedder=embedder, mode="semantic", filters=filters,
                 min_similarity=-1.0, limit=50)
    assert paths(sem) == expect
    # full text: a word that occurs in several files ("the"/"de"/"la"/"die"/"el")
    txt = set()
    for word in ["the", "de", "la", "die", "el", "y", "et"]:
        txt |= paths(search(st, word, mode="text", filters=filters, limit=50))
    assert txt and txt <= expect
    assert paths(search(st, "the", mode="text", filters=filters)) <= expect


def test_filtered_knn_returns_k_whenever_k_rows_match(tmp_path):
    """3000 windows of video files crowd the query; 15 audio windows lie far away. A kind
    filter must still give k=10 audio rows, in the exact and in the binary path."""
    store = Store(tmp_path / "lib.db")
    rng = np.random.default_rng(0)
    q = rng.standard_normal(512).astype(np.float32)
    q /= np.linalg.norm(q)
    near = q + 0.5 * rng.standard_normal((3000, 512)).astype(np.float32) / np.sqrt(512)
    far = rng.standard_normal((15, 512)).astype(np.float32)
    va = store.add_media("/v.mp4", "a", 1, 1)
    au = store.add_media("/a.mp3", "b", 1, 1)
    conn = store.db.conn
    with store.transaction():
        for i, v in enumerate(near):
            conn.execute("INSERT INTO segment_vec(segment_id, embedding, media_id, kind, language)"
                         " VALUES (?, vec_int8(?), ?, 'video', 'en')", (i + 1, int8_blob(v), va))
        for i, v in enumerate(far):
            conn.execute("INSERT INTO segment_vec(segment_id, embedding, media_id, kind, language)"
                         " VALUES (?, vec_int8(?), ?, 'audio', 'de')", (5000 + i, int8_blob(v), au))
    f = Filters(kind="audio")
    exact = S.vector_knn(store, "segment", q, 10, f, path="exact")
    assert len(exact) == 10 and {m for _, m, _ in exact} == {au}
    hashing.fit(store, "segment", sample=3015)
    hashing.drop_cached_indexes()
    binary = S.vector_knn(store, "segment", q, 10, f, path="binary")
    assert len(binary) == 10 and {m for _, m, _ in binary} == {au}
    assert [i for i, _, _ in binary] == [i for i, _, _ in exact]
    lang = S.vector_knn(store, "segment", q, 12, Filters(language="de"), path="binary")
    assert len(lang) == 12 and {m for _, m, _ in lang} == {au}
    # a filter matching 15 rows with k=20 gives the 15
    assert len(S.vector_knn(store, "segment", q, 20, f, path="binary")) == 15
    store.close()


# ---- moments ------------------------------------------------------------------------------
def test_every_timestamp_points_inside_its_file(lib, embedder):
    st = lib["store"]
    durations = {m["path"]: m["duration"] for m in st.all_media()}
    queries = [q["text"] for q in EVAL["queries"][:20]] + ["dog", "budget", "the", "ladle"]
    n = 0
    for q in queries:
        for h in search(st, q, embedder=embedder, limit=10, min_similarity=0.1):
            assert 0.0 <= h.start <= h.end <= durations[h.path], (q, h)
            n += 1
    assert n > 40


def test_semantic_hits_point_at_the_target_passage(lib, embedder):
    st = lib["store"]
    where = {pid: (mid, s, e) for mid, sp in lib["spans"].items() for pid, s, e in sp}
    found = 0
    queries = [q for q in EVAL["queries"] if q["target"] in where]
    for q in queries:
        hits = search(st, q["text"], embedder=embedder, limit=1)
        if hits:
            mid, s, e = where[q["target"]]
            h = hits[0]
            found += h.media_id == mid and s - 1 <= h.start <= e
    assert found >= 0.8 * len(queries), (found, len(queries))


def test_grouped_view_and_thumbnails(lib, embedder):
    st = lib["store"]
    hits = search(st, "the", mode="text", limit=50)
    groups = group_by_file(hits)
    assert len(groups) == len(paths(hits))
    assert [g.score for g in groups] == sorted((g.score for g in groups), reverse=True)
    for g in groups:
        assert all(h.path == g.path for h in g.hits)
        assert [h.start for h in g.hits] == sorted(h.start for h in g.hits)
    budget = search(st, "quarterly budget", mode="text")[0]
    m1 = lib["ids"]["/lib/kitchen/risotto.mp4"]
    assert budget.thumbnail in (f"{m1}/0003.jpg", f"{m1}/0004.jpg")     # keyframes at 30, 40 s
    audio = [h for h in hits if h.path.endswith(".mp3")]
    assert audio and all(h.thumbnail is None for h in audio)


def test_more_like_this_stays_in_its_modality(lib, embedder):
    st = lib["store"]
    hit = search(st, "emergency savings before investing", embedder=embedder, limit=1)[0]
    more = S.more_like_this(st, hit, limit=5)
    assert more and all(h.kind == "similar" and h.segment_id is not None for h in more)
    assert not any(h.media_id == hit.media_id and h.start <= hit.start <= h.end for h in more)


# ---- the second a moment plays from ---------------------------------------------------------
def test_first_said_is_the_first_word_the_snippet_marks():
    words = [(0.0, " The"), (2.5, " Élephant,"), (3.0, " report"), (3.4, " the"),
             (3.6, " report")]
    assert S.first_said(words, "elephant") == 2.5
    assert S.first_said(words, "rep*") == 3.0
    assert S.first_said(words, "zebra") is None
    assert S.first_said(words, '"the report"') == 3.4           # the phrase, not "The" alone
    assert S.first_said(words, "the report") == 0.0
    assert S.first_said(words, "the report", relaxed=True) == 3.0   # stopwords do not count
    assert S.first_said([(7.0, "don't")], "don") == 7.0               # FTS5 splits at the '


def test_a_sentence_starts_after_a_full_stop_or_a_pause_in_its_line():
    from indexer.search.query_text import sentence_start
    # Two prompts the recogniser wrote as one line without a full stop (real timings from
    # benchmarks.spoken_search: "...agent délogé | depuis un appelant incognis")
    merged = [(36.98, " agent", 37.58), (37.58, " délogé", 38.18),
              (38.91, " depuis", 40.01), (40.01, " un", 40.31), (40.31, " appelant", 40.81)]
    assert sentence_start(merged, 40.31) == 38.91      # a 0.73 s silence before "depuis"
    assert sentence_start(merged, 37.58) is None       # still the line's first sentence
    # the silence swallowed by a word's timing: "...themselves as | to reset the audio"
    stretched = [(12.96, " themselves", 13.50), (13.50, " as", 14.16), (14.16, " to", 15.20),
                 (15.49, " reset", 15.97), (15.97, " the", 16.23)]
    assert sentence_start(stretched, 15.49) == 14.16
    # words said at an even pace, with commas: one sentence
    even = [(1.0 + 0.4 * i, w, 1.3 + 0.4 * i)
            for i, w in enumerate(" Well, after that, the elephant report".split(" ")[1:])]
    assert sentence_start(even, 2.6) is None
    assert sentence_start([(t, w) for t, w, _ in merged], 40.31) is None   # no end times


LINE = [("Good", 10.0), ("morning.", 10.4), ("After", 11.0), ("that,", 11.3), ("the", 11.6),
        ("elephant", 11.8), ("report", 12.4), ("is", 12.9), ("due.", 13.1)]


@pytest.fixture
def said_lib(tmp_path):
    """One file whose second line has word timings: "elephant" is said 1.8 s into it."""
    store = Store(tmp_path / "lib.db")
    mid = store.add_media("/lib/talk.mp4", "fp", 1, 1)
    store.save_probe(mid, {"duration": 30.0, "container": "mp4", "streams": [], "kind": "video"},
                     [])
    store.save_transcript(mid, "en", [
        {"start": 1.0, "end": 4.0, "text": "Welcome to the museum.",
         "words": [{"start": 1.0 + i, "end": 1.9 + i, "word": " " + w}
                   for i, w in enumerate(["Welcome", "to", "the", "museum."])]},
        {"start": 10.0, "end": 13.5, "text": " ".join(w for w, _ in LINE),
         "words": [{"start": t, "end": t + 0.3, "word": " " + w} for w, t in LINE]}])
    yield store
    store.close()


def test_a_said_moment_plays_from_the_word_said(said_lib):
    (hit,) = search(said_lib, "elephant")           # no vectors: no embedder is asked for
    assert (hit.start, hit.seek) == (11.0, 11.8)     # its sentence ("After that, ..."), its word
    assert search(said_lib, '"the elephant"')[0].seek == 11.6
    # relaxed (not every word said): the first content word, not "the"
    (hit,) = search(said_lib, "the zebra elephant", mode="text")
    assert "[elephant]" in hit.snippet and hit.seek == 11.8
    # a corrected line has no word timings any more: its start
    seg = said_lib.transcript(hit.media_id)[1]["id"]
    said_lib.correct_segment(seg, "After that, the elephant report is late.")
    assert search(said_lib, "elephant")[0].seek == 10.0


def test_cli_json_and_the_gui_request_give_the_same_second(said_lib, capsys, tmp_path):
    from app.cli import main
    from app.search_requests import answer, search_models
    assert main(["search", "elephant", "--json", "--library", str(said_lib.path)]) == 0
    (hit,) = json.loads(capsys.readouterr().out)["hits"]
    assert (hit["start"], hit["seek"]) == (11.0, 11.8)
    assert main(["search", "elephant", "--library", str(said_lib.path)]) == 0
    assert "/lib/talk.mp4  00:00:11  [said]" in capsys.readouterr().out
    (row,) = answer(said_lib, {"mode": "text", "query": "elephant"}, search_models(None),
                    tmp_path)
    assert row["seek"] == 11.8


def test_a_meaning_moment_starts_and_plays_at_its_best_segment(lib, embedder):
    st = lib["store"]
    hit = search(st, "emergency savings before investing", embedder=embedder,
                 mode="semantic", limit=1)[0]
    said = {s["start"]: s["text"] for s in st.transcript(hit.media_id)}
    first = min(said)                    # the window begins a line before the answer
    assert first < hit.start == hit.seek < hit.end
    assert "emergency" in said[hit.start].lower()


def test_search_asks_for_a_model_only_when_it_needs_one(lib, embedder, classifier):
    asked = []
    models = S.SearchModels(embedder=lambda: asked.append("embedder") or embedder,
                            image_model=lambda: asked.append("image") or classifier)
    st = lib["store"]
    search(st, "risotto", mode="text", models=models)
    search(st, image=np.ones(1280, np.float32), models=models)     # a feature needs no model
    assert asked == []
    assert search(st, "risotto", models=models) and asked == ["embedder"]
    with pytest.raises(ValueError, match="text embedder"):
        search(st, "risotto")


# ---- query by example ------------------------------------------------------------------------
@needs_photos
def test_by_image_finds_the_frame_it_was_cut_from(lib, tmp_path, classifier):
    st = lib["store"]
    for name in ["butterfly.jpg", "messi5.jpg", "fruits.jpg"]:
        img = lib["photos"][name]
        h, w = img.shape[:2]
        crop = img[int(0.1 * h):int(0.8 * h), int(0.15 * w):int(0.9 * w)]
        crop = cv2.resize(crop, (crop.shape[1] * 2 // 3, crop.shape[0] * 2 // 3))
        f = tmp_path / f"cut-{name}"
        cv2.imwrite(str(f), crop, [cv2.IMWRITE_JPEG_QUALITY, 70])
        hits = search(st, image=str(f), image_model=classifier, limit=3)
        assert hits and hits[0].kind == "similar" and hits[0].keyframe_id is not None
        idx = list(lib["photos"]).index(name)
        m1, m3 = lib["ids"]["/lib/kitchen/risotto.mp4"], lib["ids"]["/lib/voyage/greve.mp4"]
        want_media, want_t = (m1, 10.0 * idx) if idx < 5 else (m3, 10.0 * (idx - 5))
        assert (hits[0].media_id, hits[0].start) == (want_media, want_t), name
        assert hits[0].thumbnail == f"{want_media}/{int(want_t // 10):04d}.jpg"


@needs_photos
def test_by_keyframe_id_and_more_like_a_frame(lib):
    st = lib["store"]
    kf = st.db.execute("SELECT id, media_id, time FROM keyframes ORDER BY id LIMIT 1").fetchone()
    hits = search(st, keyframe_id=kf[0], limit=3)
    assert hits and all(h.keyframe_id != kf[0] for h in hits)
    tag_hit = [h for h in search(st, "dog", mode="text") if h.kind == "tag"][0]
    more = S.more_like_this(st, tag_hit, limit=3)
    assert more and all(h.keyframe_id is not None for h in more)


# ---- binary codes ------------------------------------------------------------------------------
def _clustered(n, d=512, clusters=50, seed=0):
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(np.arange(1, d + 1))          # anisotropic, like real embeddings
    centres = rng.standard_normal((clusters, d)) * spectrum
    lab = rng.integers(0, clusters, n)
    x = centres[lab] + 0.6 * rng.standard_normal((n, d)) * spectrum
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_binary_codes_recall_on_a_generated_set():
    from models.binary_codes import as_words, fit_coder, hamming, smallest, word_major
    x = _clustered(6000)
    db, queries = x[:5800], x[5800:]
    coder = fit_coder(db, 256, sample=4000)
    cols = word_major(coder.encode(db))
    recalls = []
    for q in queries:
        truth = set(np.argsort(-(db @ q))[:10])
        cand = smallest(hamming(cols, as_words(coder.encode(q[None]))[0]), 300, 256)
        top = cand[np.argsort(-(db[cand] @ q))[:10]]
        recalls.append(len(truth & set(top)) / 10)
    assert np.mean(recalls) >= 0.95, np.mean(recalls)
    back = type(coder).from_bytes(coder.to_bytes())
    assert (back.encode(db[:50]) == coder.encode(db[:50])).all()


def test_vec0_chunk_reader_matches_sql_and_codes_follow_changes(tmp_path):
    from indexer.store.vec0 import read_vec0_sql
    store = Store(tmp_path / "lib.db")
    x = _clustered(2600, seed=1)
    conn = store.db.conn
    mids = [store.add_media(f"/m{i}.mp4", f"f{i}", 1, 1) for i in range(3)]
    with store.transaction():
        for i, v in enumerate(x[:2500]):
            conn.execute("INSERT INTO segment_vec(segment_id, embedding, media_id, kind, language)"
                         " VALUES (?, vec_int8(?), ?, ?, ?)", (10 ** 6 + i, int8_blob(v), mids[i % 2],
                                                     "video", ["en", "a-long-language-tag"][i % 2]))
        conn.execute("DELETE FROM segment_vec WHERE segment_id IN (1000007, 1000700, 1001500)")
    fast = hashing.read_vec0(conn, "segment_vec", 512, hashing.SPACES["segment"].meta)
    slow = read_vec0_sql(conn, "segment_vec", 512, hashing.SPACES["segment"].meta, None)
    for key in fast:
        assert (np.asarray(fast[key]) == np.asarray(slow[key])).all(), key
    some = hashing.read_vec0(conn, "segment_vec", 512, (), [10 ** 6 + 3, 10 ** 6 + 7,
                                                             10 ** 6 + 2400, 99999])
    assert some["ids"].tolist() == [10 ** 6 + 3, 10 ** 6 + 2400]

    hashing.fit(store, "segment", sample=2000)
    hashing.drop_cached_indexes()
    q = x[2550]
    before = hashing.binary_knn(store, "segment", q, 5)
    assert len(before) == 5
    # a new file's windows arrive (through real segments, so the triggers see them)
    segs = [{"start": float(i), "end": float(i) + 1, "text": f"line {i}"} for i in range(40)]
    store.save_transcript(mids[2], "en", segs)
    tr = store.transcript(mids[2])
    wins = [{"segment_ids": [s["id"]], "text": s["text"], "language": "en"} for s in tr]
    new_vecs = np.stack([q + 0.01 * np.random.default_rng(i).standard_normal(512)
                         for i in range(40)]).astype(np.float32)
    store.save_text_index(mids[2], wins, new_vecs, [{"keyword": "line"}])
    assert hashing.dirty_media(store, "segment") == [mids[2]]
    fresh = hashing.binary_knn(store, "segment", q, 5)       # searched exactly until synced
    assert {m for _, m, _ in fresh} == {mids[2]}
    assert hashing.sync(store, "segment") == 40
    assert hashing.dirty_media(store, "segment") == []
    synced = hashing.binary_knn(store, "segment", q, 5)
    assert {m for _, m, _ in synced} == {mids[2]}
    # int8 re-ranking may swap near-ties (these 40 vectors are within 0.01 of each other)
    assert len({i for i, _, _ in synced} & {i for i, _, _ in fresh}) >= 4
    # deleting the file drops its codes (trigger), and the in-memory index follows
    store.delete_media([mids[2]])
    after = hashing.binary_knn(store, "segment", q, 5)
    assert mids[2] not in {m for _, m, _ in after}
    assert [i for i, _, _ in after] == [i for i, _, _ in before]
    # maintain: nothing to refit at this size, full check finds nothing stale
    rep = hashing.maintain(store, ["segment"], min_rows=10 ** 9)
    assert rep[0]["action"] == "sync" and rep[0]["written"] == 0
    # a trimmed change log makes the in-memory index reload, with the same answers
    assert hashing.trim_log(store, "segment", keep=1)
    assert [i for i, _, _ in hashing.binary_knn(store, "segment", q, 5)] == \
        [i for i, _, _ in after]
    store.close()


def test_maintain_fits_then_refits_when_grown(tmp_path):
    store = Store(tmp_path / "lib.db")
    x = _clustered(900, seed=2)
    conn = store.db.conn
    mid = store.add_media("/m.mp4", "f", 1, 1)

    def add(lo, hi):
        with store.transaction():
            for i in range(lo, hi):
                conn.execute("INSERT INTO segment_vec(segment_id, embedding, media_id, kind, "
                             "language) VALUES (?, vec_int8(?), ?, 'video', 'en')", (i + 1, int8_blob(x[i]), mid))
    add(0, 300)
    assert hashing.maintain(store, ["segment"], min_rows=400)[0]["action"].startswith("none")
    add(300, 400)
    assert hashing.maintain(store, ["segment"], min_rows=400)[0]["action"] == "fit"
    add(400, 700)
    assert hashing.maintain(store, ["segment"], min_rows=400)[0]["action"] == "sync"
    add(700, 800)
    rep = hashing.maintain(store, ["segment"], min_rows=400)[0]
    assert rep["action"] == "refit" and rep["rows"] == 800
    store.close()


# ---- CLI ---------------------------------------------------------------------------------------
def test_cli_search(lib, capsys, monkeypatch, embedder):
    from app.cli import main
    lib_path = str(lib["path"])
    assert main(["search", "risotto", "--library", lib_path]) == 0
    out = capsys.readouterr().out
    assert "/lib/kitchen/risotto.mp4  00:00:01" in out and "[risotto]" in out.lower()
    assert main(["search", "xqzvbt plorf gnarb", "--library", lib_path]) == 4
    assert "No matches." in capsys.readouterr().out
    assert main(["search", "la", "--lang", "fr", "--json", "--library", lib_path]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hits"] and {h["path"] for h in data["hits"]} == {"/lib/voyage/greve.mp4"}
    assert main(["search", "the", "--in", "/lib/money", "--limit", "3", "--json",
                 "--library", lib_path]) == 0
    data = json.loads(capsys.readouterr().out)
    assert 0 < len(data["hits"]) <= 3 and {h["path"] for h in data["hits"]} == \
        {"/lib/money/podcast.mp3"}
    assert main(["search", "dog", "--tag", "cat", "--library", lib_path]) == 4
    capsys.readouterr()
    assert main(["search", "--library", lib_path]) == 2
    assert main(["search", "the", "--group", "--library", lib_path]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("/lib/") and out.splitlines()[1].startswith("  00:")


@needs_photos
def test_cli_search_by_image(lib, capsys, tmp_path, vision_models_dir, monkeypatch):
    from app.cli import main
    monkeypatch.setenv("AVINDEX_MODELS_DIR", str(vision_models_dir))
    f = tmp_path / "q.jpg"
    cv2.imwrite(str(f), lib["photos"]["baboon.jpg"][40:400, 60:450])
    assert main(["search", "--image", str(f), "--json", "--limit", "1",
                 "--library", str(lib["path"])]) == 0
    hit = json.loads(capsys.readouterr().out)["hits"][0]
    assert hit["path"] == "/lib/kitchen/risotto.mp4" and hit["start"] == 0.0
    assert main(["search", "--image", str(tmp_path / "missing.jpg"),
                 "--library", str(lib["path"])]) == 4


def test_a_hit_says_whether_its_words_came_from_speech_or_a_subtitle_track(said_lib):
    from indexer.search.vectors import window
    mid = said_lib.media_by_path("/lib/talk.mp4")["id"]
    said_lib.save_subtitle_lines(mid, [{"track": "talk.fr.srt", "language": "fr", "lines": [
        {"start": 1.2, "end": 3.8, "text": "Bienvenue au musée."},
        {"start": 10.1, "end": 13.4, "text": "Le rapport sur l'éléphant est en retard."}]}])
    # both say "elephant" there: the speech line, whose words are timed, places the moment
    (spoken,) = search(said_lib, "elephant")
    assert (spoken.source, spoken.track, spoken.seek) == ("speech", None, 11.8)
    (shown,) = search(said_lib, "éléphant retard")
    assert (shown.source, shown.track, shown.kind) == ("subtitles", "talk.fr.srt", "said")
    assert shown.seek == 10.1                        # no word timings: the line's start
    assert search(said_lib, "bienvenue", filters=S.Filters(language="fr"))
    assert not search(said_lib, "bienvenue", filters=S.Filters(language="en"))
    # a transcript window is read within its own source and track, never across them
    first = said_lib.transcript(mid, "subtitles")[0]["id"]
    assert window(said_lib, first).text == ("Bienvenue au musée. "
                                            "Le rapport sur l'éléphant est en retard.")
    speech_first = said_lib.transcript(mid, "speech")[0]["id"]
    assert "Bienvenue" not in window(said_lib, speech_first).text


# ---- who speaks ----------------------------------------------------------------------------

def test_speaker_terms_in_the_query_text():
    from indexer.search import speaker_term, split_speaker
    assert split_speaker('speaker:"Anna Smith" quarterly budget') == ("quarterly budget",
                                                                     "Anna Smith")
    assert split_speaker("budget Speaker:Anna") == ("budget", "Anna")
    assert split_speaker("speaker:#12") == ("", 12)
    assert split_speaker("speaker:“Zoé”  risotto") == ("risotto", "Zoé")
    assert split_speaker('speaker:"Anna') == ("", "Anna")          # still being typed
    assert split_speaker("the loudspeaker:blue") == ("the loudspeaker:blue", None)
    assert split_speaker('speaker:Anna speaker:"anna" x') == ("x", "Anna")
    for bad in ("speaker:", 'speaker:"" x', "speaker:Anna speaker:Bob"):
        with pytest.raises(ValueError):
            split_speaker(bad)
    assert speaker_term("Anna  Smith", 3) == 'speaker:"Anna Smith"'
    assert speaker_term(None, 3) == speaker_term('Say "hi"', 3) == "speaker:#3"
    for text in ('speaker:"Anna Smith"', "speaker:#3"):
        assert split_speaker(text)[1] in ("Anna Smith", 3)


def test_a_speaker_filter_keeps_meaning_and_word_hits_of_that_voice(tmp_path, embedder):
    """Two voices in one file, each saying its own passages: a meaning or word query
    about one passage finds it with its speaker's voice only, played from its speech."""
    store = Store(tmp_path / "lib.db")
    try:
        mid = store.add_media("/lib/meeting.mp4", "fp", 1000, 1)
        store.save_probe(mid, {"duration": 400.0, "container": "mp4", "streams": [],
                               "kind": "video"}, [])
        spans = index_transcript(store, mid, ["p01", "p04", "p09", "p10"], "en", embedder)
        rng = np.random.default_rng(0)
        centroids = [v / np.linalg.norm(v) for v in rng.normal(size=(2, 256))]
        who = {"p01": 1, "p04": 2, "p09": 1, "p10": 2}
        store.save_speakers(
            mid, [{"label": label, "centroid": centroids[label - 1], "seconds": 60.0}
                  for label in (1, 2)],
            [{"start": s, "end": e, "label": who[pid], "embedding": None} for pid, s, e in spans],
            encoder="test", match_threshold=0.99)
        anna, bob = (s["voice_id"] for s in store.list_speakers(mid))
        store.name_voice(anna, "Anna")
        span = {pid: (s, e) for pid, s, e in spans}
        query = next(q["text"] for q in EVAL["queries"] if q["target"] == "p04")

        hits = search(store, query, embedder=embedder)
        assert hits and hits[0].start <= span["p04"][1] and hits[0].end >= span["p04"][0]
        assert hits[0].speaker == "Speaker 2" and hits[0].voice_id == bob
        # meaning hits of Anna's voice only: never the passage Bob says
        for h in search(store, f'speaker:"anna" {query}', embedder=embedder):
            assert h.speaker == "Anna"
            assert any(span[p][0] - 0.01 <= h.seek <= span[p][1] for p in ("p01", "p09")), h
        mine = search(store, query, filters=Filters(speaker=bob), embedder=embedder)
        assert mine and mine[0].start <= span["p04"][1] and mine[0].end >= span["p04"][0]
        assert span["p04"][0] - 0.01 <= mine[0].seek <= span["p04"][1]
        # words: "risotto" is said in Anna's passage
        assert search(store, "risotto", mode="text", filters=Filters(speaker="ANNA"))
        assert search(store, "speaker:#%d risotto" % bob, mode="text") == []
        # alone, the voice's turns, each its own moment with what was said
        turns = search(store, "", filters=Filters(speaker="Anna"))
        assert [(h.start, h.end) for h in turns] == [span["p01"], span["p09"]]
        assert "risotto" in turns[0].snippet and turns[0].kinds == ["said"]
        with pytest.raises(S.UnknownSpeaker, match="“Anna”"):
            search(store, "risotto", filters=Filters(speaker="Bob"))
        with pytest.raises(S.UnknownSpeaker, match="no voice #999"):
            search(store, "speaker:#999")
    finally:
        store.close()
