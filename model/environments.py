"""The environments a check runs in, in one table.

An `Environment` is where mail is delivered: a local disk under one of the persistence
profiles of `model.persistence` (its name is the profile's), or an NFSv3 export seen by
two client hosts (`model.nfs`). Each value says
  - `profile`: what the storage makes durable and what a crash may leave - the local disk's
    profile, or the NFS server's export (sync or async);
  - `mount` and `drc`: the NFS set-up, the client's mount options and whether the server
    keeps a duplicate-request cache (`mount` is None for a local disk);
  - `faults`: which faults apply there (the NFS-only ones only on NFS), and `threat`: the
    threat model a matrix column checks it under;
  - `durable_success_possible`: whether any strategy can keep the durability promise
    there at all (not on an async export, R2).
`ENVIRONMENTS` is the table; nothing else spells an environment name out.
"""

from __future__ import annotations

from dataclasses import dataclass

from maildircheck.model.faults import DEFAULT_FAULTS, FAULTS, Family, Fault
from maildircheck.model.nfs import EXPORT_ASYNC, EXPORT_SYNC, Mount
from maildircheck.model.persistence import PROFILES, Profile


@dataclass(frozen=True, repr=False)
class Environment:
    name: str
    summary: str
    profile: Profile  # the local disk's, or the NFS server's export
    specs: tuple[str, ...]
    mount: Mount | None = None  # the NFS clients' mount; None: a local disk
    drc: bool = True  # NFS: the server keeps a duplicate-request cache (R6)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"ENVIRONMENTS[{self.name!r}]"

    @property
    def is_nfs(self) -> bool:
        return self.mount is not None

    @property
    def durable_success_possible(self) -> bool:
        """Can any strategy make a message durable before it reports success here?"""
        return self.profile.durable_success_possible

    def applies(self, fault: Fault) -> bool:
        return self.is_nfs or not fault.nfs_only

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Every fault that can happen here, in the fault table's order."""
        return tuple(f for f in FAULTS.values() if self.applies(f))

    @property
    def threat(self) -> tuple[Fault, ...]:
        """The faults a matrix column is checked under: the default ones, and on NFS also
        what the network and the other hosts add (server and client crashes, lost
        replies, soft time-outs). The clash sources (X13-X16) are not in it: they are
        asked for by name, or with "all"."""
        extra = (
            tuple(f for f in self.faults if not f.default and f.family is not Family.CLASH)
            if self.is_nfs
            else ()
        )
        return DEFAULT_FAULTS + extra


def _local(profile: Profile) -> Environment:
    return Environment(profile.name, profile.summary, profile, profile.specs)


ENVIRONMENTS: dict[str, Environment] = {
    e.name: e
    for e in (
        *(_local(p) for p in PROFILES.values()),
        Environment(
            "nfs3-sync",
            "NFSv3, sync export with a duplicate-request cache, mounted with cto",
            EXPORT_SYNC,
            ("R1", "R3", "R4", "R5"),
            Mount(),
        ),
        Environment(
            "nfs3-async-export",
            "NFSv3, async export: the server acknowledges before data or metadata is stable",
            EXPORT_ASYNC,
            ("R2",),
            Mount(),
        ),
        Environment(
            "nfs3-nocto",
            "NFSv3, sync export, mounted nocto: close does not flush, open does not revalidate",
            EXPORT_SYNC,
            ("R1", "R3"),
            Mount(cto=False),
        ),
        Environment(
            "nfs3-nodrc",
            "NFSv3, sync export, a server without a duplicate-request cache",
            EXPORT_SYNC,
            ("R1", "R6"),
            Mount(),
            drc=False,
        ),
    )
}

LOCAL = tuple(e for e in ENVIRONMENTS.values() if not e.is_nfs)
NFS = tuple(e for e in ENVIRONMENTS.values() if e.is_nfs)


def environment(name: str) -> Environment:
    """The environment called `name`; ValueError with a one-line message otherwise."""
    found = ENVIRONMENTS.get(name)
    if found is None:
        raise ValueError(f"unknown environment {name!r} (known: {', '.join(ENVIRONMENTS)})")
    return found
