"""Which file system a folder lives on, from /proc/mounts: native change events do not
arrive from network shares (another machine writes there), so those are polled."""
from __future__ import annotations

import os
import re

MOUNTS_FILE = "/proc/mounts"

# file system types whose changes can come from another machine
NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smbfs", "smb3", "9p", "afs", "ceph",
                        "glusterfs", "lustre", "gpfs", "beegfs", "davfs", "ncpfs", "coda",
                        "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse",
                        "fuse.glusterfs", "fuse.cephfs", "fuse.davfs2", "fuse.smbnetfs"})


def _unescape(field: str) -> str:
    # /proc/mounts writes a space as \040, a tab as \011, a backslash as \134
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: str, mounts_file: str = MOUNTS_FILE) -> tuple[str, str] | None:
    """(mount point, file system type) of the mount holding `path`; None where the mount
    table cannot be read (not Linux)."""
    try:
        with open(mounts_file, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best: tuple[str, str] | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point, fstype = _unescape(parts[1]), parts[2]
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        # the longest mount point wins; among equals the last (the one mounted on top)
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fstype)
    return best


def network_fs(path: str, mounts_file: str = MOUNTS_FILE) -> str | None:
    """The network file system type `path` lives on (e.g. "nfs4", "cifs"), or None."""
    mount = mount_of(path, mounts_file)
    if mount is None:
        return None
    fstype = mount[1]
    if fstype in NETWORK_FS or fstype.startswith(("smb", "nfs")):
        return fstype
    return None
