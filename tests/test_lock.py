"""The dependency lock: what the suite runs with is exactly what packaging/requirements.lock
says, and every package avindex needs (transitively) is in it, so an upstream release
cannot reach a fresh clone."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "packaging" / "requirements.lock"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[_norm(name)] = version
    return pins


def _needed(root: str = "avindex", extras=("test", "ray")) -> set[str]:
    """avindex's requirements and theirs, as installed here (markers evaluated)."""
    seen: set[str] = set()
    todo = [(root, set(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in reqs:
            req = Requirement(spec)
            env_ok = any(req.marker is None or req.marker.evaluate({"extra": e})
                         for e in (wanted or {""}))
            if not env_ok:
                continue
            key = _norm(req.name)
            if key not in seen:
                seen.add(key)
                todo.append((req.name, set(req.extras)))
    return seen


def test_every_package_avindex_needs_is_locked_and_installed_at_its_pin():
    pins = _locked()
    needed = _needed() | {"openai-whisper"}      # installed --no-deps by setup_env.sh
    assert needed - {"triton"} <= set(pins), sorted(needed - set(pins))
    wrong = {}
    for name in sorted(needed - {"triton"}):
        have = metadata.version(name)
        if have != pins[name]:
            wrong[name] = (have, pins[name])
    assert not wrong, f"installed != locked: {wrong}"


def test_setup_installs_with_the_lock_as_constraints():
    script = (ROOT / "packaging" / "setup_env.sh").read_text()
    assert "-c packaging/requirements.lock" in script
    # a changed lock re-runs the install on the next `make test`
    assert "packaging/requirements.lock" in script.split("want=", 1)[1].split("\n", 1)[0]
