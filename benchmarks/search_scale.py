"""Search at scale: a generated 1M-moment library, latency, size, build time and the
recall of the binary-code path against exact float search.

    .venv/bin/python -m benchmarks.search_scale               # 1M moments, 100k keyframes
    .venv/bin/python -m benchmarks.search_scale --n 100000    # smaller, faster
    options: --keyframes N  --queries Q  --seed S  --rebuild  --no-sweep

The library is a real avindex library (indexer.store.Store, the real schema plus
indexer.store.schema_search), cached under benchmarks/.cache/scale-<n>-<kf>-<seed>/ and rebuilt
only with --rebuild or when the generator changes.

What is generated, and why it is realistic enough to time and to measure recall on
(running the real text and image models on a million moments would take days on this
2-core box):

- Text vectors (512-d, like segment_vec): the mean vector and the eigen-spectrum of
  real multilingual-USE embeddings (of the eval passages, the LibriVox transcript and
  1500 passages of standard-library docstrings) shape a mixture of 2000 topic clusters;
  each file leans on 1-3 topics and has its own small offset. The between-topic share
  of the variance is set so that a query meets its topic's moments at cosine ~0.4-0.6
  and other topics' at ~0.1-0.25, as real paraphrases and unrelated text do with USE
  (indexer.stages.text's calibration). The nearest-neighbour structure (anisotropic,
  clustered) is what binary codes find hard or easy, which is what recall measures.
- Keyframe vectors (1280-d, like keyframe_vec): the same construction from real
  EfficientNet-Lite0 features of Debian opencv-doc photos and video frames (with crops
  and flips), 600 visual clusters, 4-12 frames per shot around a shot vector. Each
  keyframe's "top class" (for the class-partitioned index) is what the real ImageNet
  head of the model gives for that feature.
- Text: a 40,000-word generated vocabulary (pronounceable, deterministic) with a Zipf
  distribution, 100 function words as the most frequent tokens, and each topic owning
  30 content words that make up ~20% of its moments' tokens; 14-30 tokens per moment.
  Queries are 1-3 topic words (some with a trailing *), so their hit counts range from
  tens to thousands of rows, as in a real transcript collection.

Measured: p50/p95 latency of the search service (indexer.search.search, the same call
the CLI and GUI make) for text, semantic, hybrid, filtered hybrid and by-image queries;
sqlite-vec's exact float KNN for comparison; recall@10 of the binary path against the
exact float top-10; bits vs recall vs scan latency for ITQ and variance-allocated codes;
a class-partitioned keyframe index; bytes per moment of each table; build time.
The synthetic embedder returns each query's generated vector, so query embedding is
not in the service latencies; the real USE embedder's single-query time is measured and
reported beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.markdown import table  # noqa: E402
CACHE = ROOT / "benchmarks" / ".cache"
GENERATOR_VERSION = 5  # 5: int8 vectors in vec0 (migration 0007)
DATA = Path("/usr/share/doc/opencv-doc/examples/data")

N_TOPICS = 2000
N_VISUAL = 600
FUNCTION_WORDS = ("the a and to of in it is that you i was for on this with they but so we "
                  "be at have not what there just like he she are as do one all if or my "
                  "know about can get out up when from by an then no would had your them "
                  "were me right go think very really some well yeah now here how our more "
                  "because going his her which who could been its than into did only see "
                  "also back over where much thing way even any make").split()
LANGS = (["en"] * 12 + ["fr"] * 2 + ["de"] * 2 + ["es"] * 2 + ["it", "pt"])
KINDS = ["audio"] * 4 + ["video"] * 4 + ["audio+video"] * 2
LABELS = ["dog", "car", "person", "beach", "kitchen", "stage", "laptop", "guitar", "bicycle",
          "mountain", "whiteboard", "bird", "street", "boat", "forest", "classroom"]




# ---- real statistics the generator copies --------------------------------------------------
def _spectrum(x: np.ndarray, dim: int) -> dict:
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / (len(x) - 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.maximum(evals[order], 0), evecs[:, order]
    # Fewer samples than dimensions (images): extend the measured decay as a power law.
    r = min(len(x) - 2, dim) - 1
    lo = max(10, r // 4)
    if r > lo + 5:
        k = np.arange(lo, r)
        slope, icpt = np.polyfit(np.log(k + 1), np.log(evals[lo:r] + 1e-12), 1)
        tail = np.arange(r, dim)
        evals[r:] = np.exp(icpt + slope * np.log(tail + 1))
    return {"mean": mean.astype(np.float32), "evals": evals.astype(np.float64),
            "evecs": evecs.astype(np.float32)}


def text_stats() -> dict:
    path = CACHE / "text_spectrum.npz"
    if path.is_file():
        return dict(np.load(path))
    from benchmarks.text_models import distractor_passages, load
    from models.text_embed import load_embedder
    data = load()
    texts = []
    for p in data["passages"]:
        texts += [s for s in re.split(r"(?<=[.!?])\s+", p["text"]) if s]
    texts += [q["text"] for q in data["queries"]]
    for line in Path("/usr/share/pocketsphinx/test/data/librivox/transcription").read_text(
            ).splitlines():
        texts.append(re.sub(r"<[^>]+>|\(.*\)", "", line).strip())
    texts += distractor_passages(1500)
    emb = load_embedder().embed(texts, kind="passage")
    stats = _spectrum(emb.astype(np.float64), 512)
    sims = emb @ emb.T
    stats["pair_cos_mean"] = np.float64(sims[np.triu_indices(len(emb), 1)].mean())
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **stats)
    return stats


def image_stats() -> dict:
    path = CACHE / "image_spectrum.npz"
    if path.is_file():
        return dict(np.load(path))
    import cv2
    import torch
    from models.vision.image_features import ImageClassifier, weights_path
    images = []
    for f in sorted(DATA.glob("*")):
        if f.suffix.lower() in (".jpg", ".png"):
            img = cv2.imread(str(f))
            if img is not None and min(img.shape[:2]) >= 64:
                h, w = img.shape[:2]
                images += [img, img[:, ::-1], img[h // 8: h - h // 8, w // 8: w - w // 8],
                           img[: h * 3 // 4, w // 4:]]
        elif f.suffix.lower() == ".avi":
            cap = cv2.VideoCapture(str(f))
            i = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if i % 12 == 0:
                    images.append(frame)
                i += 1
            cap.release()
    clf = ImageClassifier(CACHE / "models")
    feats = clf.features(images)
    # the un-normalised pooled features: norm of the raw vector, for the class head
    raw_norms = []
    for i in range(0, min(64, len(images)), 16):
        batch = np.stack([__import__("models.vision.image_features", fromlist=["x"])
                          .preprocess(im) for im in images[i:i + 16]])
        _, pooled = clf._forward(batch)
        raw_norms += np.linalg.norm(pooled, axis=1).tolist()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    stats = _spectrum(feats.astype(np.float64), 1280)
    stats["W"] = state["_fc.weight"].numpy().astype(np.float32)
    stats["b"] = state["_fc.bias"].numpy().astype(np.float32)
    stats["raw_norm"] = np.float64(np.median(raw_norms))
    stats["n_images"] = np.int64(len(images))
    sims = feats @ feats.T
    stats["pair_cos_mean"] = np.float64(sims[np.triu_indices(len(feats), 1)].mean())
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **stats)
    return stats


# ---- the generator ----------------------------------------------------------------------------
class Generator:
    # Text: the real mean direction carries MEAN of the squared norm (cross-topic cosine
    # ~0.1, as between real conversational passages on different subjects: 0.12); the rest
    # follows the real covariance, split into topic centre, file offset and the moment.
    MEAN, TOPIC, FILE, OWN = 0.10, 0.41, 0.10, 0.49
    QUERY_NOISE = 0.50          # a query is its topic centre plus this share of noise
    # The real spectrum (pooled over docstrings and talk) is steeper than one library of
    # talk: between real passages on different subjects the cosine has std 0.077. The
    # eigenvalues are raised to the power that gives that spread (same eigenvectors).
    CROSS_STD = 0.077

    @staticmethod
    def _flatten(evals: np.ndarray, total: float, cross_std: float) -> np.ndarray:
        lam = np.maximum(np.asarray(evals, np.float64), 1e-12)
        lo, hi = 0.0, 1.0
        for _ in range(50):
            p = (lo + hi) / 2
            e = lam ** p
            e = e / e.sum() * total
            if np.sqrt((e ** 2).sum()) > cross_std:
                hi = p
            else:
                lo = p
        e = lam ** lo
        return e / e.sum() * total
    VIS_CLUSTER, VIS_SHOT, VIS_OWN = 0.45, 0.35, 0.20

    def __init__(self, n: int, n_kf: int, seed: int):
        self.n, self.n_kf, self.seed = n, n_kf, seed
        self.rng = np.random.default_rng(seed)
        self.ts = text_stats()
        self.vs = image_stats()
        rng = self.rng
        self.vocab = self._vocabulary(40000)
        zipf = 1.0 / np.arange(1, len(self.vocab) + 1) ** 1.05
        self.zipf = zipf / zipf.sum()
        # each topic owns 30 mid-frequency content words
        self.topic_words = rng.choice(np.arange(300, len(self.vocab)), (N_TOPICS, 30))
        ev = self._flatten(self.ts["evals"], 1 - self.MEAN, self.CROSS_STD)
        self.t_basis = self.ts["evecs"] * np.sqrt(ev)[None, :].astype(np.float32)
        self.t_mean = (self.ts["mean"] / np.linalg.norm(self.ts["mean"])
                       * np.sqrt(self.MEAN)).astype(np.float32)
        self.topic_c = self._gauss(N_TOPICS, self.t_basis, self.TOPIC)
        self.v_basis = self.vs["evecs"] * np.sqrt(self.vs["evals"])[None, :].astype(np.float32)
        self.vis_c = self._gauss(N_VISUAL, self.v_basis, self.VIS_CLUSTER)

    def _gauss(self, n: int, basis: np.ndarray, share: float) -> np.ndarray:
        z = self.rng.standard_normal((n, basis.shape[1]), dtype=np.float32)
        return (z @ basis.T) * np.float32(np.sqrt(share))

    def _vocabulary(self, n: int) -> list[str]:
        rng = np.random.default_rng(12345)
        onset = "b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl sh st th tr".split()
        vowel = "a e i o u ai ea ee oo ou".split()
        coda = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"]
        words, seen = [], set(FUNCTION_WORDS)
        while len(words) < n:
            k = rng.integers(1, 4)
            w = "".join(onset[rng.integers(len(onset))] + vowel[rng.integers(len(vowel))]
                        for _ in range(k)) + coda[rng.integers(len(coda))]
            if w not in seen and len(w) >= 3:
                seen.add(w)
                words.append(w)
        return words

    def media(self) -> list[dict]:
        rng = self.rng
        out, made = [], 0
        folders = [f"/bench/{a}/{b}" for a in ("talks", "podcasts", "lectures", "family",
                                               "meetings") for b in range(10)]
        while made < self.n:
            m = int(min(self.n - made, max(20, rng.lognormal(np.log(400), 0.6))))
            i = len(out)
            added = 1.6e9 + rng.uniform(0, 3 * 365 * 86400)
            out.append({"id": i + 1, "path": f"{folders[rng.integers(len(folders))]}/f{i:05d}.mp4",
                        "kind": KINDS[rng.integers(len(KINDS))],
                        "language": LANGS[rng.integers(len(LANGS))],
                        "topics": rng.choice(N_TOPICS, rng.integers(1, 4), replace=False),
                        "moments": m, "first": made, "duration": m * 15.0 + 10,
                        "added": added, "mtime": added - rng.uniform(0, 2 * 365 * 86400)})
            made += m
        return out

    def moments(self, media: list[dict], lo: int, hi: int):
        """Moments lo..hi-1: (media index, topic, start, text) and 512-d vectors."""
        rng = np.random.default_rng([self.seed, lo])
        first = np.array([m["first"] for m in media])
        mi = np.searchsorted(first, np.arange(lo, hi), side="right") - 1
        topics = np.array([media[j]["topics"][rng.integers(len(media[j]["topics"]))] for j in mi])
        starts = (np.arange(lo, hi) - first[mi]) * 15.0 + rng.uniform(0, 3, hi - lo)
        file_off = np.stack([self._file_offset(media[j]) for j in mi])
        x = self.t_mean + self.topic_c[topics] + file_off + self._gauss(
            hi - lo, self.t_basis, self.OWN)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        lengths = rng.integers(14, 31, hi - lo)
        total = int(lengths.sum())
        kind = rng.random(total)
        general = rng.choice(len(self.vocab), total, p=self.zipf)
        fw = rng.integers(0, len(FUNCTION_WORDS), total)
        tw = rng.integers(0, 30, total)
        texts, pos = [], 0
        for j, L in enumerate(lengths):
            t = topics[j]
            words = []
            for u in range(pos, pos + L):
                if kind[u] < 0.45:
                    words.append(FUNCTION_WORDS[fw[u]])
                elif kind[u] < 0.80:
                    words.append(self.vocab[general[u]])
                else:
                    words.append(self.vocab[self.topic_words[t, tw[u]]])
            texts.append(" ".join(words))
            pos += L
        return mi, topics, starts, texts, x.astype(np.float32)

    def _file_offset(self, m: dict) -> np.ndarray:
        cache = self.__dict__.setdefault("_file_offsets", {})
        if m["id"] not in cache:
            r = np.random.default_rng([self.seed, 7, m["id"]])
            z = r.standard_normal(self.t_basis.shape[1]).astype(np.float32)
            cache[m["id"]] = (self.t_basis @ z) * np.float32(np.sqrt(self.FILE))
        return cache[m["id"]]

    def keyframes(self, media: list[dict]):
        """Keyframes spread over the video files: media index, time, 1280-d vector, class."""
        rng = np.random.default_rng([self.seed, 99])
        video = [i for i, m in enumerate(media) if m["kind"] != "audio"]
        weights = np.array([media[i]["moments"] for i in video], float)
        per = np.maximum(1, np.round(weights / weights.sum() * self.n_kf)).astype(int)
        per[-1] = max(1, per[-1] + self.n_kf - per.sum())
        rows_m, rows_t, shot_of, shot_cluster = [], [], [], []
        for i, cnt in zip(video, per):
            t, made = 0.0, 0
            while made < cnt:
                shot_len = int(min(cnt - made, rng.integers(4, 13)))
                shot_cluster.append(int(rng.integers(N_VISUAL)))
                shot_of += [len(shot_cluster) - 1] * shot_len
                rows_m += [i] * shot_len
                rows_t += list(t + 5.0 * np.arange(shot_len))
                t += 5.0 * shot_len
                made += shot_len
        shot_of = np.array(shot_of)
        shots = self.vis_c[np.array(shot_cluster)] + self._vis_noise(len(shot_cluster),
                                                                    self.VIS_SHOT, rng)
        x = np.empty((len(shot_of), self.v_basis.shape[0]), np.float32)
        for lo in range(0, len(x), 50000):
            hi = min(len(x), lo + 50000)
            x[lo:hi] = (self.vs["mean"] + shots[shot_of[lo:hi]]
                        + self._vis_noise(hi - lo, self.VIS_OWN, rng))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.array(rows_m), np.array(rows_t), x, self.top_class(x)

    def _vis_noise(self, n, share, rng):
        z = rng.standard_normal((n, self.v_basis.shape[1]), dtype=np.float32)
        return (z @ self.v_basis.T) * np.float32(np.sqrt(share))

    def top_class(self, x: np.ndarray) -> np.ndarray:
        """The real EfficientNet-Lite0 ImageNet head on (un-normalised) features."""
        logits = (x * np.float32(self.vs["raw_norm"])) @ self.vs["W"].T + self.vs["b"]
        return logits.argmax(axis=1)

    def text_query(self, rng, topics=None) -> tuple[str, np.ndarray, int]:
        t = int(rng.integers(N_TOPICS)) if topics is None else int(rng.choice(topics))
        k = int(rng.choice([1, 2, 2, 3]))
        words = [self.vocab[w] for w in rng.choice(self.topic_words[t], k, replace=False)]
        if rng.random() < 0.15:
            words[-1] = words[-1][:max(3, len(words[-1]) - 2)] + "*"
        q = self.t_mean + self.topic_c[t] + self._gauss(1, self.t_basis,
                                                            self.QUERY_NOISE)[0]
        return " ".join(words), (q / np.linalg.norm(q)).astype(np.float32), t


class DictEmbedder:
    """Returns each generated query's vector (the real USE time is measured separately)."""
    dim = 512

    def __init__(self):
        self.vectors: dict[str, np.ndarray] = {}

    def embed(self, texts, kind="query"):
        return np.stack([self.vectors[t] for t in texts])


# ---- building the library ---------------------------------------------------------------------
def build(n: int, n_kf: int, seed: int, folder: Path) -> dict:
    from indexer.search import code_index as hashing
    from indexer.store import Store
    from indexer.store.vec_codec import unit_int8
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    times = {}
    t0 = time.perf_counter()
    gen = Generator(n, n_kf, seed)
    times["real stats + generator"] = time.perf_counter() - t0
    store = Store(folder / "lib.db")
    conn = store.db.conn
    conn.execute("PRAGMA cache_size=-262144")
    media = gen.media()
    t0 = time.perf_counter()
    with store.transaction():
        conn.executemany(
            "INSERT INTO media(id, path, fingerprint, size, mtime_ns, duration, container, kind, "
            "language, status, added_at, indexed_at) VALUES (?, ?, ?, 1, ?, ?, 'mp4', ?, ?, "
            "'done', ?, ?)",
            [(m["id"], m["path"], f"fp{m['id']}", int(m["mtime"] * 1e9), m["duration"], m["kind"],
              m["language"], _iso(m["added"]), _iso(m["added"])) for m in media])
    times["media rows"] = time.perf_counter() - t0
    t_text = t_vec = t_gen = 0.0
    step = 50000
    all_vecs = np.zeros((n, 512), np.float32)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        t0 = time.perf_counter()
        mi, topics, starts, texts, x = gen.moments(media, lo, hi)
        all_vecs[lo:hi] = x
        q8 = unit_int8(x)
        t_gen += time.perf_counter() - t0
        t0 = time.perf_counter()
        with store.transaction():
            conn.executemany(
                "INSERT INTO segments(id, media_id, start, end, text, language, confidence) "
                "VALUES (?, ?, ?, ?, ?, ?, 0.9)",
                [(lo + j + 1, media[m]["id"], float(s), float(s) + 12.0, txt, media[m]["language"])
                 for j, (m, s, txt) in enumerate(zip(mi, starts, texts))])
        t_text += time.perf_counter() - t0
        t0 = time.perf_counter()
        with store.transaction():
            conn.executemany(
                "INSERT INTO segment_vec(segment_id, embedding, media_id, kind, language) "
                "VALUES (?, vec_int8(?), ?, ?, ?)",
                [(lo + j + 1, q8[j].tobytes(), media[m]["id"], media[m]["kind"],
                  media[m]["language"]) for j, m in enumerate(mi)])
        t_vec += time.perf_counter() - t0
        print(f"  moments {hi:,}/{n:,}  (text {t_text:.0f} s, vectors {t_vec:.0f} s)", flush=True)
    times["generate moments"] = t_gen
    times["segments + FTS"] = t_text
    times["segment_vec (int8)"] = t_vec
    np.save(folder / "segment_vecs.npy", all_vecs)
    # keywords, tags and on-screen text, a few per file
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, 5])
    kw, tags, screen = [], [], []
    for m in media:
        for t in m["topics"]:
            for w in rng.choice(gen.topic_words[t], 3, replace=False):
                s = float(rng.uniform(0, m["duration"] - 60))
                kw.append((m["id"], s, s + 60, gen.vocab[w], 0.5))
        if m["kind"] != "audio":
            for _ in range(rng.integers(2, 8)):
                s = float(rng.uniform(0, m["duration"] - 30))
                tags.append((m["id"], s, s + rng.uniform(5, 60), LABELS[rng.integers(len(LABELS))],
                             "imagenet", 0.8))
            for _ in range(rng.integers(0, 5)):
                s = float(rng.uniform(0, m["duration"] - 10))
                words = rng.choice(gen.topic_words[m["topics"][0]], 3)
                screen.append((m["id"], s, s + 8, " ".join(gen.vocab[w].title() for w in words),
                               0.9))
    with store.transaction():
        conn.executemany("INSERT INTO keywords(media_id, start, end, keyword, score) "
                         "VALUES (?, ?, ?, ?, ?)", kw)
        conn.executemany("INSERT INTO tags(media_id, start, end, label, source, score) "
                         "VALUES (?, ?, ?, ?, ?, ?)", tags)
        conn.executemany("INSERT INTO screen_text(media_id, start, end, text, confidence) "
                         "VALUES (?, ?, ?, ?, ?)", screen)
    times["keywords, tags, screen text"] = time.perf_counter() - t0
    # keyframes
    t0 = time.perf_counter()
    km, kt, kx, kc = gen.keyframes(media)
    k8 = unit_int8(kx)
    times["generate keyframes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with store.transaction():
        conn.executemany("INSERT INTO keyframes(id, media_id, time, shot, thumbnail) "
                         "VALUES (?, ?, ?, 0, ?)",
                         [(i + 1, media[m]["id"], float(t), f"{media[m]['id']}/{i:06d}.jpg")
                          for i, (m, t) in enumerate(zip(km, kt))])
        conn.executemany("INSERT INTO keyframe_vec(keyframe_id, embedding, media_id, kind) "
                         "VALUES (?, vec_int8(?), ?, ?)", [(i + 1, k8[i].tobytes(), media[m]["id"],
                                                  media[m]["kind"]) for i, m in enumerate(km)])
    times["keyframes + keyframe_vec (int8)"] = time.perf_counter() - t0
    np.save(folder / "keyframe_vecs.npy", kx)
    np.save(folder / "keyframe_class.npy", kc)
    # the class-partitioned alternative (measured, not shipped)
    t0 = time.perf_counter()
    # (vec0 gives each partition its own chunks: a small chunk size keeps 1000 mostly
    # small partitions from allocating 1000 x 1024 slots)
    conn.execute("CREATE VIRTUAL TABLE kf_by_class USING vec0(keyframe_id INTEGER PRIMARY KEY, "
                 "top_class INTEGER PARTITION KEY, embedding float[1280] distance_metric=cosine, "
                 "chunk_size=64)")
    with store.transaction():
        conn.executemany("INSERT INTO kf_by_class(keyframe_id, top_class, embedding) "
                         "VALUES (?, ?, ?)", [(i + 1, int(kc[i]), kx[i].tobytes())
                                               for i in range(len(kx))])
    times["class-partitioned keyframe table"] = time.perf_counter() - t0
    # binary codes: fit on the library's own vectors, encode everything
    for space in ("segment", "keyframe"):
        t0 = time.perf_counter()
        rep = hashing.fit(store, space)
        times[f"codes: fit + encode {space} ({rep['bits']} bits)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute("DELETE FROM search_dirty")     # the bulk load above is all encoded
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    times["checkpoint + analyze"] = time.perf_counter() - t0
    store.close()
    meta = {"n": n, "keyframes": int(len(kx)), "files": len(media), "seed": seed,
            "generator": GENERATOR_VERSION, "build_s": times}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def _iso(epoch: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---- measuring ----------------------------------------------------------------------------------
def pct(xs, p) -> float:
    return float(np.percentile(np.asarray(xs), p)) if len(xs) else float("nan")


def exact_top(x: np.ndarray, qs, k: int = 10, masks=None) -> list[np.ndarray]:
    """Exact top-k rows by inner product for each query (batched over row blocks)."""
    Q = np.stack(qs).astype(np.float32)
    best_s = np.full((len(Q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(Q), 0), np.int64)
    for lo in range(0, len(x), 100000):
        s = (x[lo:lo + 100000] @ Q.T).T                         # (queries, block)
        if masks is not None:
            s = np.where(np.stack([m[lo:lo + 100000] for m in masks]), s, -np.inf)
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + lo], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    return [bi[np.isfinite(bs)] for bi, bs in zip(best_i, best_s)]


def sizes(conn) -> dict:
    rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    out: dict[str, int] = {}
    for name, size in rows:
        for prefix in ("segment_vec", "segment_code", "segment_rr", "keyframe_vec",
                       "keyframe_code", "keyframe_rr", "kf_by_class", "segments_fts",
                       "keywords_fts", "tags_fts", "screen_text_fts"):
            if name == prefix or name.startswith(prefix + "_"):
                out[prefix] = out.get(prefix, 0) + size
                break
        else:
            out[name] = out.get(name, 0) + size
    return out


def measure(folder: Path, meta: dict, n_queries: int, seed: int, sweep: bool) -> dict:
    from indexer.search import code_index as hashing
    from indexer import search as S
    from indexer.store import Store
    from models.binary_codes import fit_coder, word_major
    n = meta["n"]
    store = Store(folder / "lib.db")
    conn = store.db.conn
    gen = Generator(n, meta["keyframes"], seed)
    media = gen.media()
    rng = np.random.default_rng([seed, 2024])
    X = np.load(folder / "segment_vecs.npy", mmap_mode="r")
    X = np.ascontiguousarray(X)
    emb = DictEmbedder()
    queries = []
    # queries ask about what the library holds: topics drawn as the moments are
    present = np.concatenate([np.repeat(m["topics"], m["moments"] // len(m["topics"]))
                              for m in media])
    for _ in range(n_queries):
        text, vec, topic = gen.text_query(rng, present)
        emb.vectors[text] = vec
        queries.append((text, vec))
    report: dict = {"n": n, "keyframes": meta["keyframes"], "files": meta["files"],
                    "build_s": meta["build_s"], "loadavg_start": os.getloadavg()}

    # warm the in-memory code indexes (a one-time cost per process)
    t0 = time.perf_counter()
    hashing.code_index(store, "segment")
    report["code_index_load_s"] = {"segment": time.perf_counter() - t0}
    t0 = time.perf_counter()
    hashing.code_index(store, "keyframe")
    report["code_index_load_s"]["keyframe"] = time.perf_counter() - t0

    # ---- service latencies
    def run(label, calls):
        for c in calls[:5]:
            c()                                                 # warm-up
        lat, counts, parts = [], [], {}
        for c in calls:
            st = {}
            t0 = time.perf_counter()
            hits = c(st)
            lat.append((time.perf_counter() - t0) * 1000)
            counts.append(len(hits))
            for k, v in st.items():
                parts.setdefault(k, []).append(v)
        return {"label": label, "p50": pct(lat, 50), "p95": pct(lat, 95), "max": max(lat),
                "mean_hits": float(np.mean(counts)),
                "parts_p50": {k: round(pct(v, 50), 2) for k, v in parts.items()}}

    filters = []
    for i in range(n_queries):
        kind = i % 5
        m = media[int(rng.integers(len(media)))]
        if kind == 0:
            filters.append(S.Filters(language=m["language"]))
        elif kind == 1:
            filters.append(S.Filters(kind="video"))
        elif kind == 2:
            filters.append(S.Filters(folder=os.path.dirname(m["path"])))
        elif kind == 3:
            filters.append(S.Filters(tag=LABELS[int(rng.integers(len(LABELS)))]))
        else:
            filters.append(S.Filters(since="2022-01-01", min_duration=3000))
    lat = []
    mk = lambda f: (lambda st=None: f(st if st is not None else {}))
    lat.append(run("text (FTS only)", [mk(lambda st, q=q: S.search(
        store, q[0], mode="text", stats=st)) for q in queries]))
    lat.append(run("semantic (binary codes)", [mk(lambda st, q=q: S.search(
        store, q[0], mode="semantic", embedder=emb, stats=st)) for q in queries]))
    lat.append(run("hybrid", [mk(lambda st, q=q: S.search(
        store, q[0], mode="hybrid", embedder=emb, stats=st)) for q in queries]))
    lat.append(run("hybrid + filter", [mk(lambda st, q=q, f=f: S.search(
        store, q[0], mode="hybrid", embedder=emb, filters=f, stats=st))
        for q, f in zip(queries, filters)]))
    K = np.load(folder / "keyframe_vecs.npy")
    kc = np.load(folder / "keyframe_class.npy")
    img_idx = rng.choice(len(K), n_queries, replace=False)
    img_q = []
    for i in img_idx:          # a frame cut and re-encoded: cos ~0.9 to its source
        v = K[i] + gen._vis_noise(1, 0.02, rng)[0]
        img_q.append((v / np.linalg.norm(v)).astype(np.float32))
    lat.append(run("by image (binary codes)", [mk(lambda st, v=v: S.search(
        store, image=v, stats=st)) for v in img_q]))
    # exact sqlite-vec float KNN through the same service (few queries: it is slow)
    few = queries[: max(5, n_queries // 10)]
    lat.append(run("semantic, exact int8 sqlite-vec", [mk(lambda st, q=q: S.search(
        store, q[0], mode="semantic", embedder=emb, vector_path="exact", stats=st))
        for q in few]))
    lat.append(run("by image, exact int8 sqlite-vec", [mk(lambda st, v=v: S.search(
        store, image=v, vector_path="exact", stats=st)) for v in img_q[:len(few)]]))
    report["latency_ms"] = lat

    # the real text embedder's single-query time, to add to semantic and hybrid
    try:
        from models.binary_codes import one_blas_thread
        from models.text_embed import load_query_embedder
        real = load_query_embedder()            # what the app's searches embed queries with
        real.embed(["warm up"], kind="query")
        t = []
        with one_blas_thread():                 # as inside indexer.search.search
            for q in queries[:60]:
                t0 = time.perf_counter()
                real.embed([q[0] + " what was said"], kind="query")
                t.append((time.perf_counter() - t0) * 1000)
        report["use_query_embed_ms"] = {"p50": pct(t, 50), "p95": pct(t, 95)}
    except Exception as exc:           # pragma: no cover
        report["use_query_embed_ms"] = {"error": str(exc)}

    # ---- recall@10 of the binary path vs exact float, text vectors
    def recall(space, vecs, qs, masks=None, filt=None, **kw):
        r = []
        truths = exact_top(vecs, qs, 10, masks)
        for i, (q, truth) in enumerate(zip(qs, truths)):
            got = S.vector_knn(store, space, q, 10, None if filt is None else filt[i],
                               path="binary", **kw)
            r.append(len(set((truth + 1).tolist()) & {g[0] for g in got}) / max(1, len(truth)))
        return float(np.mean(r))
    qv = [q[1] for q in queries]
    rec = {"segment, no filter": recall("segment", X, qv)}
    seg_media = np.zeros(n, np.int64)
    kinds = np.array([m["kind"] for m in media])
    langs = np.array([m["language"] for m in media])
    for m in media:
        seg_media[m["first"]:m["first"] + m["moments"]] = m["id"]
    fmasks = []
    for f in filters:
        allowed = S.allowed_media(store, f)
        ok = np.ones(len(media) + 1, bool)
        if allowed is not None:
            ok[:] = False
            ok[allowed] = True
        if f.language:
            ok[1:] &= langs == f.language
        if f.kinds():
            ok[1:] &= np.isin(kinds, f.kinds())
        fmasks.append(ok[seg_media])
    rec["segment, filtered"] = recall("segment", X, qv, fmasks, filters)
    for over, ham in ((30, 1), (30, 10), (100, 10)):
        rec[f"segment, Hamming top {10 * over * ham} -> re-rank {10 * over}"] = recall(
            "segment", X, qv[:100], oversample=over, hamming_factor=ham)
    rec["keyframe (by image)"] = recall("keyframe", K, img_q)
    report["recall_at_10"] = rec

    # ---- the class-partitioned keyframe index vs the binary codes
    part = {"recall": [], "ms": [], "rows_scanned": []}
    counts = np.bincount(kc, minlength=1000)
    qclass = gen.top_class(np.stack(img_q))
    for q, c, tr in zip(img_q, qclass, exact_top(K, img_q, 10)):
        truth = set((tr + 1).tolist())
        t0 = time.perf_counter()
        got = conn.execute("SELECT keyframe_id FROM kf_by_class WHERE embedding MATCH ? AND "
                           "k = 10 AND top_class = ?", (q.tobytes(), int(c))).fetchall()
        part["ms"].append((time.perf_counter() - t0) * 1000)
        part["recall"].append(len(truth & {g[0] for g in got}) / 10)
        part["rows_scanned"].append(int(counts[c]))
    report["class_partition"] = {
        "classes_used": int((counts > 0).sum()), "largest_class_share":
        float(counts.max() / counts.sum()), "recall_at_10": float(np.mean(part["recall"])),
        "p50_ms": pct(part["ms"], 50), "p95_ms": pct(part["ms"], 95),
        "mean_rows_scanned": float(np.mean(part["rows_scanned"])),
        "query_class_matches_source": float(np.mean(qclass == kc[img_idx]))}

    # ---- bits vs recall vs scan latency (in memory, the same code path as the service)
    if sweep:
        rows = []
        fit_x = X[rng.choice(n, min(n, 30000), replace=False)]
        sweep_q = qv[:100]
        truth = [set(t.tolist()) for t in exact_top(X, sweep_q, 10)]
        from indexer.store.vec_codec import from_int8, to_int8
        import dataclasses
        for family, bits in (("itq", 64), ("itq", 128), ("itq", 256), ("pca-var", 256),
                             ("itq", 512)):
            t0 = time.perf_counter()
            coder = fit_coder(fit_x, bits, family=family)
            fit_s = time.perf_counter() - t0
            idx = hashing.CodeIndex(dataclasses.replace(hashing.SPACES["segment"], n_bits=bits,
                                                        family=family))
            idx.coder, idx.ids = coder, np.arange(n)
            idx.cols = np.ascontiguousarray(np.concatenate(
                [word_major(coder.encode(X[i:i + 100000])) for i in range(0, n, 100000)], axis=1))
            idx.media, idx.alive = np.zeros(n, np.int64), np.ones(n, bool)
            for n_ham, n_rr in ((300, 300), (1000, 1000), (3000, 300), (10000, 1000)):
                r, ms = [], []
                for q, tr in zip(sweep_q, truth):
                    t0 = time.perf_counter()
                    cand = idx.candidates(q, n_rr, None, n_ham)
                    ms.append((time.perf_counter() - t0) * 1000)
                    v = from_int8(to_int8(X[cand]), 512)
                    top = cand[np.argsort(-(v @ q))[:10]]
                    r.append(len(tr & set(top.tolist())) / 10)
                rows.append([family, bits, n_ham, n_rr, float(np.mean(r)), pct(ms, 50),
                             pct(ms, 95), bits // 8, round(fit_s, 1)])
            print(f"  sweep {family} {bits}: done", flush=True)
            del idx
        report["sweep"] = rows

    report["sizes"] = sizes(conn)
    report["file_bytes"] = os.path.getsize(folder / "lib.db")
    report["loadavg_end"] = os.getloadavg()
    store.close()
    return report


def print_report(r: dict) -> None:
    n = r["n"]
    print(f"\n## Search at scale: {n:,} moments in {r['files']:,} files, "
          f"{r['keyframes']:,} keyframes")
    print(f"(load average at start {r['loadavg_start'][0]:.1f}, at end "
          f"{r['loadavg_end'][0]:.1f}; 2 cores)\n")
    rows = [[x["label"], round(x["p50"], 1), round(x["p95"], 1), round(x["max"], 1),
             round(x["mean_hits"], 1), " ".join(f"{k}={v}" for k, v in x["parts_p50"].items()
                                                if k != "total_ms")]
            for x in r["latency_ms"]]
    print(table(rows, ["query", "p50 ms", "p95 ms", "max ms", "hits", "parts (p50 ms)"]))
    e = r.get("use_query_embed_ms", {})
    if "p50" in e:
        print(f"\nReal query embedding (multilingual USE, one query): p50 {e['p50']:.1f} ms, "
              f"p95 {e['p95']:.1f} ms; add it to semantic and hybrid for end-to-end time.")
    print(f"In-memory code index load (once per process): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in r["code_index_load_s"].items()))
    print("\nRecall@10 of the binary path (Hamming top k*oversample, int8 re-rank) vs exact float:")
    print(table([[k, v] for k, v in r["recall_at_10"].items()], ["case", "recall@10"]))
    c = r["class_partition"]
    print(f"\nClass-partitioned keyframe index (vec0 partition key = top ImageNet class of the "
          f"frame; query searched in its own top class): recall@10 {c['recall_at_10']:.3f}, "
          f"p50 {c['p50_ms']:.1f} ms, p95 {c['p95_ms']:.1f} ms, mean rows scanned "
          f"{c['mean_rows_scanned']:.0f}; {c['classes_used']} classes used, largest holds "
          f"{c['largest_class_share']:.1%}; query class = source frame's class in "
          f"{c['query_class_matches_source']:.1%}.")
    if "sweep" in r:
        print("\nBits vs recall@10 vs latency (Hamming scan -> asymmetric score -> int8 re-rank, "
              f"{n:,} text vectors, 100 queries; int8 re-rank):")
        print(table(r["sweep"], ["family", "bits", "Hamming top", "re-ranked", "recall@10",
                                 "candidates p50 ms", "p95 ms", "code bytes", "fit s"]))
    s = r["sizes"]
    print(f"\nSize: file {r['file_bytes'] / 2**20:,.0f} MiB. Per moment:")
    per = lambda name, count: s.get(name, 0) / max(1, count)
    rows = [[name, round(per(name, n if not name.startswith(("keyframe", "kf_")) else
                                r["keyframes"]), 1), round(s.get(name, 0) / 2**20, 1)]
            for name in ("segment_vec", "segment_code", "segment_rr", "segments", "segments_fts",
                         "keyframe_vec", "keyframe_code", "keyframe_rr", "kf_by_class")]
    print(table(rows, ["table", "bytes per row", "MiB"]))
    binary = per("segment_code", n) + per("segment_rr", n)
    print(f"Binary path (codes + int8 re-rank vectors): {binary:.0f} B per moment; "
          f"with the float segment_vec kept as well: {binary + per('segment_vec', n):.0f} B.")
    b = r["build_s"]
    print("\nBuild: " + ", ".join(f"{k} {v:.0f} s" for k, v in b.items())
          + f"; total {sum(b.values()) / 60:.1f} min")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="moments (default 1M)")
    ap.add_argument("--keyframes", type=int, default=None, help="default n/10")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    ap.add_argument("--build-only", action="store_true", help="build (or check) the cache, stop")
    a = ap.parse_args(argv)
    n_kf = a.keyframes if a.keyframes is not None else max(1000, a.n // 10)
    folder = CACHE / f"scale-{a.n}-{n_kf}-{a.seed}"
    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else None
    if a.rebuild or meta is None or meta.get("generator") != GENERATOR_VERSION:
        print(f"Building {a.n:,} moments, {n_kf:,} keyframes in {folder} ...", flush=True)
        meta = build(a.n, n_kf, a.seed, folder)
    else:
        print(f"Using the cached library in {folder} (--rebuild to make it again)")
    if a.build_only:
        print(json.dumps(meta["build_s"], indent=1))
        return 0
    report = measure(folder, meta, a.queries, a.seed, not a.no_sweep)
    print_report(report)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
