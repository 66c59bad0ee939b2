"""The real file systems the recorder runs, in one table.

A `RealFs` is a file system as made and mounted here: its mkfs command, its mount options,
the image size it needs (xfs will not make a file system under 300 MB), how long to wait for
its periodic commit (`settle_s`: ext4 and btrfs are mounted with commit=1 and xfs's log
worker runs every second through the `fs.xfs.xfssyncd_centisecs` sysctl, which the rig sets
and restores, so a wait of 2.5 s sees the commit that on a default mount comes after
5 s or 30 s - only the timing changes, not what a commit writes), and the model's
environment that claims to describe it (`claimed_by`: the profile whose crash states must
include every crash state measured on it - `maildircheck fidelity` checks that claim).
`FILESYSTEMS` is the table; nothing else spells a real file system's name or options out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealFs:
    name: str
    summary: str
    mkfs: tuple[str, ...]  # the device path is appended
    options: str  # mount -o
    size_mb: int
    claimed_by: str  # an environment name (model.environments)
    sysctl: tuple[tuple[str, str], ...] = ()  # /proc/sys settings while the rig runs
    settle_s: float = 2.5  # how long a periodic commit takes to come (jbd2 rounds up)

    def __str__(self) -> str:
        return self.name

    @property
    def fstype(self) -> str:
        return self.mkfs[0].removeprefix("mkfs.")

    @property
    def state_options(self) -> str:
        """Mount options for a crash state: the same, and for xfs `nouuid` (a copy of a file
        system may be mounted while the recorder still knows the original)."""
        return self.options + (",nouuid" if self.fstype == "xfs" else "")


_EXT4 = ("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0")

FILESYSTEMS: dict[str, RealFs] = {
    f.name: f
    for f in (
        RealFs(
            "ext4-ordered",
            "ext4, data=ordered (the default), delayed allocation",
            _EXT4,
            "data=ordered,commit=1",
            64,
            "ext4-ordered",
        ),
        RealFs(
            "ext4-writeback",
            "ext4, data=writeback",
            _EXT4,
            "data=writeback,commit=1",
            64,
            "ext4-writeback",
        ),
        RealFs(
            "ext4-journal",
            "ext4, data=journal (file data goes through the journal)",
            _EXT4,
            "data=journal,commit=1",
            64,
            "ext4-journal",
        ),
        RealFs(
            "ext4-nodelalloc",
            "ext4, data=ordered without delayed allocation",
            _EXT4,
            "data=ordered,nodelalloc,commit=1",
            64,
            "ext4-ordered",
        ),
        RealFs(
            "xfs",
            "xfs, default options",
            ("mkfs.xfs", "-q", "-f"),
            "defaults",
            300,
            "ext4-ordered",
            (("fs/xfs/xfssyncd_centisecs", "100"),),
        ),
        RealFs(
            "btrfs",
            "btrfs, default options (single device)",
            ("mkfs.btrfs", "-q", "-f"),
            "commit=1",
            128,
            "btrfs",
        ),
    )
}


def real_fs(name: str) -> RealFs:
    """The real file system called `name`; ValueError with a one-line message otherwise."""
    found = FILESYSTEMS.get(name)
    if found is None:
        raise ValueError(f"unknown file system {name!r} (known: {', '.join(FILESYSTEMS)})")
    return found
