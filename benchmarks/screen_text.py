"""On-screen text in many languages: PP-OCRv6 (the `rapidocr` wheel's models) against
PP-OCRv4 (rapidocr-onnxruntime's own), both through models.vision.ocr.ScreenTextReader.

    .venv/bin/python -m benchmarks.screen_text                 # dev and test, both models
    .venv/bin/python -m benchmarks.screen_text --split dev --show 5

Text: real translated interface messages from Debian's `apt` and `dpkg` message catalogs
(/usr/share/locale/LANG/LC_MESSAGES/{apt,dpkg}.mo; English is their msgid), 3-9 words,
without format directives, in 13 languages: en, de, fr, es, it, pt, nl, pl, cs, sv, tr,
vi (Latin scripts, most with diacritics) and ru (Cyrillic). Frames: 1280x720, two lines
each, drawn with Debian's DejaVu fonts, as a subtitle (white, black outline) over a real
photograph of Debian's opencv-doc, or as a slide (dark ground, light text). Each
language's frames alternate between dev and test by a hash of their text (fixed before
any run); nothing is tuned here: the two models are compared as they ship.

Measures, per frame and language: words found (the words of the drawn lines that appear
in what was read, both folded as the full-text index folds them: case and diacritics,
so "Grüße" read "GruBe" is a miss and "à" read "a" is not); exact words (diacritics
kept); CER (character error rate, jiwer); CPU ms a frame (one onnxruntime thread).
"""
from __future__ import annotations

import argparse
import gettext
import hashlib
import re
import sys
import time
import unicodedata
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.markdown import table  # noqa: E402

LANGS = ["en", "de", "fr", "es", "it", "pt", "nl", "pl", "cs", "sv", "tr", "vi", "ru"]
CATALOGS = ["apt", "dpkg"]
LOCALE = Path("/usr/share/locale")
PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")
BACKGROUNDS = ["orange.jpg", "fruits.jpg", "baboon.jpg", "lena.jpg", "building.jpg",
               "aloeL.jpg", "starry_night.jpg", "home.jpg"]
FONTS = Path("/usr/share/fonts/truetype/dejavu")
FRAMES_PER_LANG = 12            # 6 dev, 6 test (by hash)
SIZE = (1280, 720)


def _h(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)


def _catalog(mo: Path) -> dict:
    """msgid -> translation of a compiled message catalog ({} when it is missing)."""
    if not mo.is_file():
        return {}
    with open(mo, "rb") as f:
        return gettext.GNUTranslations(f)._catalog


def messages(lang: str) -> list[tuple[str, str]]:
    """(msgid, this language's text) of short plain messages, in a fixed order."""
    out = {}
    for domain in CATALOGS:
        # English is the msgids (read from the German catalog)
        catalog = _catalog(LOCALE / ("de" if lang == "en" else lang) / "LC_MESSAGES"
                           / f"{domain}.mo")
        for msgid, text in catalog.items():
            if not isinstance(msgid, str) or not msgid:
                continue
            text = msgid if lang == "en" else text
            if not isinstance(text, str) or "%" in text or "\n" in text or "$" in text:
                continue
            text = " ".join(text.replace("_", "").split()).rstrip(":").strip()
            words = text.split()
            if not (3 <= len(words) <= 9 and len(text) <= 48):
                continue
            if sum(c.isalpha() for c in text) < 0.75 * len(text.replace(" ", "")):
                continue
            out[msgid] = text
    return sorted(out.items(), key=lambda kv: _h(kv[0]))


def _font(bold: bool, size: int):
    from PIL import ImageFont
    return ImageFont.truetype(str(FONTS / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")),
                              size)


def draw(lines: list[str], style: str, k: int) -> np.ndarray:
    """A BGR frame with `lines` as a subtitle over a photo, or as a slide."""
    from PIL import Image, ImageDraw
    w, h = SIZE
    if style == "subtitle":
        photo = cv2.imread(str(PHOTOS / BACKGROUNDS[k % len(BACKGROUNDS)]))
        img = Image.fromarray(cv2.cvtColor(cv2.resize(photo, SIZE), cv2.COLOR_BGR2RGB))
        font, y, gap = _font(False, 38), h - 150, 54
        d = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            tw = d.textlength(line, font=font)
            d.text(((w - tw) / 2, y + i * gap), line, font=font, fill=(255, 255, 255),
                   stroke_width=3, stroke_fill=(0, 0, 0))
    else:
        img = Image.new("RGB", SIZE, (22, 34, 64))
        d = ImageDraw.Draw(img)
        d.text((90, 200), lines[0], font=_font(True, 48), fill=(250, 250, 250))
        for i, line in enumerate(lines[1:]):
            d.text((90, 320 + i * 70), line, font=_font(False, 40), fill=(200, 215, 255))
    return cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)


def frames(lang: str) -> list[dict]:
    msgs = messages(lang)
    out = []
    for k in range(min(FRAMES_PER_LANG, len(msgs) // 2)):
        pair = [msgs[2 * k][1], msgs[2 * k + 1][1]]
        split = "dev" if _h(lang + "|".join(pair)) % 2 == 0 else "test"
        out.append({"lang": lang, "lines": pair, "style": ("subtitle", "slide")[k % 2],
                    "split": split, "k": k})
    return out


def fold(text: str) -> list[str]:
    """Words as the full-text index compares them: lower case, diacritics removed."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c)[0] != "M")
    return re.findall(r"\w+", text)


def exact(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFC", text.lower()))


def found_share(truth: str, read: str, words) -> tuple[int, int]:
    want, got = words(truth), set(words(read))
    return sum(w in got for w in want), len(want)


def score(readers: dict, items: list[dict], show: int = 0) -> dict:
    import jiwer
    out = {}
    images = [draw(it["lines"], it["style"], it["k"]) for it in items]   # once for all models
    for name, reader in readers.items():
        rows = []
        for it, img in zip(items, images):
            cpu = time.process_time()
            lines = reader.read(img)
            cpu = time.process_time() - cpu
            read = " ".join(line.text for line in lines)
            truth = " ".join(it["lines"])
            rows.append({"lang": it["lang"], "cpu": cpu, "read": read, "truth": truth,
                         "folded": found_share(truth, read, fold),
                         "exact": found_share(truth, read, exact),
                         "cer": float(jiwer.cer(truth, read or " "))})
        out[name] = rows
    if show:
        for name, rows in out.items():
            for r in rows[:show]:
                print(f"  {name} [{r['lang']}] {r['truth']!r}\n      -> {r['read']!r}")
    return out


def summary(rows: list[dict]) -> list:
    f = [sum(r["folded"][i] for r in rows) for i in (0, 1)]
    e = [sum(r["exact"][i] for r in rows) for i in (0, 1)]
    return [f[0] / max(1, f[1]), e[0] / max(1, e[1]), float(np.mean([r["cer"] for r in rows])),
            1000 * float(np.median([r["cpu"] for r in rows]))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=["dev", "test", "both"], default="both")
    ap.add_argument("--show", type=int, default=0, help="print the first N readings per model")
    args = ap.parse_args(argv)
    from models.vision.ocr import ScreenTextReader, v6_model_files
    if v6_model_files() is None:
        raise SystemExit("PP-OCRv6's files are missing: make setup (rapidocr==3.10.0)")
    readers = {"PP-OCRv4": ScreenTextReader(v6=False, threads=1),
               "PP-OCRv6": ScreenTextReader(threads=1)}
    items = [f for lang in LANGS for f in frames(lang)]
    for split in (["dev", "test"] if args.split == "both" else [args.split]):
        part = [i for i in items if i["split"] == split]
        res = score(readers, part, args.show)
        print(f"\n### {split}: {len(part)} frames, "
              f"{sum(len(fold(' '.join(i['lines']))) for i in part)} words\n")
        rows = []
        for name, rs in res.items():
            rows.append([name, "all", len(rs), *summary(rs)])
        for lang in LANGS:
            for name, rs in res.items():
                sub = [r for r in rs if r["lang"] == lang]
                if sub:
                    rows.append([name, lang, len(sub), *summary(sub)])
        print(table(rows, ["model", "language", "frames", "words found (folded)",
                           "words exact", "CER", "CPU ms a frame (median)"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
