"""Other revisions of this repository, checked out once under benchmarks/.cache/worktrees/,
for benchmarks that run them side by side with the working tree; and a stamp of the
indexing code, kept beside what a benchmark caches so that stale caches are noticed."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKTREES = ROOT / "benchmarks" / ".cache" / "worktrees"


def checkout(rev: str) -> Path:
    """A worktree of `rev` (made once). Run code from it with cwd at its root: the
    current directory comes first on sys.path, before the editable install of this one."""
    sha = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                                  text=True).strip()
    path = WORKTREES / sha
    if not (path / ".git").exists():
        WORKTREES.mkdir(parents=True, exist_ok=True)
        subprocess.check_call(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach",
                               str(path), sha], stdout=subprocess.DEVNULL)
    return path


def trees(baselines: list[str]) -> list[tuple[str, Path]]:
    """(label, root) for each baseline revision, then the working tree as "current"."""
    return [(rev, checkout(rev)) for rev in baselines] + [("current", ROOT)]


# What makes an index (search code reads it only): a cached library indexed by other code
# than this gives stale figures
INDEXING_CODE = ("app", "indexer/stages", "indexer/store", "indexer/intake.py", "models",
                 ":(exclude)indexer/store/search_reads.py")


def code_stamp(paths: tuple[str, ...] = INDEXING_CODE) -> str:
    """A stamp of the working tree's code under `paths` (git pathspecs): their files as
    staged and any change not staged yet."""
    files = subprocess.check_output(["git", "-C", str(ROOT), "ls-files", "-s", "--", *paths])
    diff = subprocess.check_output(["git", "-C", str(ROOT), "diff", "--", *paths])
    return hashlib.sha1(files + diff).hexdigest()[:12]
