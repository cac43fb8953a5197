"""Language tags as containers, subtitle files and people write them, made into the codes
speech recognition reports (Whisper's: ISO 639-1 where one exists, e.g. "fr"), so a
subtitle track's language can be compared with the file's and filtered on in search.

    normalise("fra") == normalise("fre") == normalise("fr-CA") == normalise("French") == "fr"
    normalise("und") is None;  language_name("fr") == "French"
"""
from __future__ import annotations

import re

# ISO 639-1 code: (English name, ISO 639-2 codes (bibliographic and terminology)).
# The languages Whisper recognises, plus a few common in subtitle tracks.
_LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "af": ("Afrikaans", ("afr",)), "am": ("Amharic", ("amh",)), "ar": ("Arabic", ("ara",)),
    "as": ("Assamese", ("asm",)), "az": ("Azerbaijani", ("aze",)), "ba": ("Bashkir", ("bak",)),
    "be": ("Belarusian", ("bel",)), "bg": ("Bulgarian", ("bul",)), "bn": ("Bengali", ("ben",)),
    "bo": ("Tibetan", ("tib", "bod")), "br": ("Breton", ("bre",)), "bs": ("Bosnian", ("bos",)),
    "ca": ("Catalan", ("cat",)), "cs": ("Czech", ("cze", "ces")), "cy": ("Welsh", ("wel", "cym")),
    "da": ("Danish", ("dan",)), "de": ("German", ("ger", "deu")), "el": ("Greek", ("gre", "ell")),
    "en": ("English", ("eng",)), "es": ("Spanish", ("spa",)), "et": ("Estonian", ("est",)),
    "eu": ("Basque", ("baq", "eus")), "fa": ("Persian", ("per", "fas")),
    "fi": ("Finnish", ("fin",)), "fil": ("Filipino", ("fil",)), "fo": ("Faroese", ("fao",)),
    "fr": ("French", ("fre", "fra")), "ga": ("Irish", ("gle",)),
    "gd": ("Scottish Gaelic", ("gla",)), "gl": ("Galician", ("glg",)),
    "gu": ("Gujarati", ("guj",)), "ha": ("Hausa", ("hau",)), "haw": ("Hawaiian", ("haw",)),
    "he": ("Hebrew", ("heb",)), "hi": ("Hindi", ("hin",)), "hr": ("Croatian", ("hrv", "scr")),
    "ht": ("Haitian Creole", ("hat",)), "hu": ("Hungarian", ("hun",)),
    "hy": ("Armenian", ("arm", "hye")), "id": ("Indonesian", ("ind",)),
    "is": ("Icelandic", ("ice", "isl")), "it": ("Italian", ("ita",)), "ja": ("Japanese", ("jpn",)),
    "jw": ("Javanese", ("jav",)), "ka": ("Georgian", ("geo", "kat")), "kk": ("Kazakh", ("kaz",)),
    "km": ("Khmer", ("khm",)), "kn": ("Kannada", ("kan",)), "ko": ("Korean", ("kor",)),
    "ku": ("Kurdish", ("kur",)), "la": ("Latin", ("lat",)), "lb": ("Luxembourgish", ("ltz",)),
    "ln": ("Lingala", ("lin",)), "lo": ("Lao", ("lao",)), "lt": ("Lithuanian", ("lit",)),
    "lv": ("Latvian", ("lav",)), "mg": ("Malagasy", ("mlg",)), "mi": ("Maori", ("mao", "mri")),
    "mk": ("Macedonian", ("mac", "mkd")), "ml": ("Malayalam", ("mal",)),
    "mn": ("Mongolian", ("mon",)), "mr": ("Marathi", ("mar",)), "ms": ("Malay", ("may", "msa")),
    "mt": ("Maltese", ("mlt",)), "my": ("Burmese", ("bur", "mya")), "ne": ("Nepali", ("nep",)),
    "nl": ("Dutch", ("dut", "nld")), "nn": ("Norwegian Nynorsk", ("nno",)),
    "no": ("Norwegian", ("nor", "nob")), "oc": ("Occitan", ("oci",)),
    "pa": ("Punjabi", ("pan",)), "pl": ("Polish", ("pol",)), "ps": ("Pashto", ("pus",)),
    "pt": ("Portuguese", ("por",)), "ro": ("Romanian", ("rum", "ron", "mol")),
    "ru": ("Russian", ("rus",)), "sa": ("Sanskrit", ("san",)), "sd": ("Sindhi", ("snd",)),
    "si": ("Sinhala", ("sin",)), "sk": ("Slovak", ("slo", "slk")),
    "sl": ("Slovenian", ("slv",)), "sn": ("Shona", ("sna",)), "so": ("Somali", ("som",)),
    "sq": ("Albanian", ("alb", "sqi")), "sr": ("Serbian", ("srp", "scc")),
    "su": ("Sundanese", ("sun",)), "sv": ("Swedish", ("swe",)), "sw": ("Swahili", ("swa",)),
    "ta": ("Tamil", ("tam",)), "te": ("Telugu", ("tel",)), "tg": ("Tajik", ("tgk",)),
    "th": ("Thai", ("tha",)), "tk": ("Turkmen", ("tuk",)), "tl": ("Tagalog", ("tgl",)),
    "tr": ("Turkish", ("tur",)), "tt": ("Tatar", ("tat",)), "uk": ("Ukrainian", ("ukr",)),
    "ur": ("Urdu", ("urd",)), "uz": ("Uzbek", ("uzb",)), "vi": ("Vietnamese", ("vie",)),
    "yi": ("Yiddish", ("yid",)), "yo": ("Yoruba", ("yor",)), "yue": ("Cantonese", ("yue",)),
    "zh": ("Chinese", ("chi", "zho", "cmn")), "zu": ("Zulu", ("zul",)),
}
# Other spellings met in the wild: retired ISO 639-1 codes, Javanese's "jv" (Whisper says
# "jw"), Bokmål, and tools that tag Brazilian Portuguese as "pob".
_ALIASES = {"iw": "he", "in": "id", "ji": "yi", "jv": "jw", "nb": "no", "pob": "pt",
            "mo": "ro", "sh": "sr"}
# "undetermined", "multiple", "no linguistic content", "not applicable", "unknown"
_NONE = {"und", "mul", "zxx", "mis", "qaa", "n/a", "unknown", "none", ""}

_BY_CODE: dict[str, str] = {}
for _code, (_name, _codes) in _LANGUAGES.items():
    _BY_CODE[_code] = _code
    _BY_CODE[_name.lower()] = _code
    for _c in _codes:
        _BY_CODE[_c] = _code
for _alias, _code in _ALIASES.items():
    _BY_CODE[_alias] = _code
_BY_CODE.update({"brazilian": "pt", "castilian": "es", "farsi": "fa", "flemish": "nl",
                 "mandarin": "zh", "moldavian": "ro", "slovene": "sl", "bokmal": "no",
                 "bokmål": "no", "nynorsk": "nn"})

_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{2,8})*$")   # en, eng, en-US, pt_BR


def normalise(tag: str | None) -> str | None:
    """A language tag or name as the code speech recognition uses ("fr"), or None when
    it names no language (empty, "und") or none this table knows."""
    if not tag:
        return None
    text = tag.strip().lower()
    if text in _NONE:
        return None
    if text in _BY_CODE:
        return _BY_CODE[text]
    m = _TAG.match(text)
    if m:
        return _BY_CODE.get(m.group(1).lower())
    return None


def language_name(code: str | None) -> str | None:
    """The English name of a code `normalise` returns ("fr" -> "French")."""
    entry = _LANGUAGES.get(code or "")
    return entry[0] if entry else None
