"""Releasing what a rig set up (G1): every mount and loop device that refers to its work
directory, found from /proc/mounts and `losetup -l`, not from a list kept as they were made.

The recorder calls `release(work)` when its owner is gone, and `rig.sweep_stale` calls it
for a rig whose owner and recorder both died; so a mount or loop device made in the moment
between setting it up and telling the recorder (`guard`) is released too.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable


def _loops(work: str) -> list[str]:
    listing = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True)
    try:
        devices = json.loads(listing.stdout or "{}").get("loopdevices", [])
    except json.JSONDecodeError:
        return []
    return [d["name"] for d in devices if str(d.get("back-file", "")).startswith(work + "/")]


def release(work: str, also: Iterable[str] = ()) -> None:
    """Unmount (lazily) every file system mounted under `work` but its FUSE mount, detach
    every loop device backed by a file under it (and `also`: loop devices or mount points
    known to be on its disk), then unmount the FUSE mount. Errors are ignored: each step
    is tried."""
    fuse = os.path.join(work, "fuse")
    loops = _loops(work)  # listed first: once the FUSE mount is gone, back-files read "/disk"
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if f" {work}/" in line]
    extra = list(also)
    for where in sorted({*mounts, *(p for p in extra if not p.startswith("/dev/"))},
                        key=len, reverse=True):
        if where != fuse:
            subprocess.run(["umount", "-l", where], capture_output=True)
    for loop in dict.fromkeys([*loops, *(p for p in extra if p.startswith("/dev/loop"))]):
        subprocess.run(["losetup", "-d", loop], capture_output=True)
    subprocess.run(["fusermount3", "-u", "-z", fuse], capture_output=True)
