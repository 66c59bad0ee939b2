"""B19 - the unique name has no random part: it repeats after a reboot or on cloned hosts.

Source: Dovecot maildir-filename.c `maildir_filename_generate` (`<seconds>.M<usec>P<pid>.
<host>`, unique within one process by never reusing a reading) and maildir-save.c (rename
into new/); Courier maildircreate.c (the same tmp/ name). cr.yp.to/proto/maildir.html asks
for "enough" of its delivery-identifier parts "to guarantee uniqueness" and names what each
needs: M and P a clock that never shows a reading twice and pids unique on the host; the
host part that "every machine that delivers to the maildir must have its own hostname".

B4's algorithm (rename into new/) with the name `seconds.M<usec>P<pid>.host`
(`weak_names.time_usec_pid_host`). It survives what breaks B4's and B12's names - a pid
reused within one second (E4), two NFS clients - and falls to the clash sources: a host
that reboots with no clock kept (X14) comes back at its boot time and gives its first
delivery the same pid again, so that delivery draws the name of the first delivery before
the reboot; two NFS clients cloned from one image (X15) do the same side by side.

Expected to break P3 no-clobber on every persistence profile and NFS environment under
`reboot` (and on NFS under `cloned-hostnames`): the delivery after the reboot renames its
file over the message delivered before it.
"""

from __future__ import annotations

from maildircheck.impl.catalogue.b4_rename_clobber import rename_into_new
from maildircheck.impl.catalogue.weak_names import time_usec_pid_host
from maildircheck.impl.deliver import Steps, run
from maildircheck.model.outcome import DeliveryRequest, Outcome
from maildircheck.model.syscalls import SyscallGen

STEPS = Steps(name=time_usec_pid_host, place=rename_into_new, place_consumes_tmp=True)


def deliver(request: DeliveryRequest) -> SyscallGen[Outcome]:
    """B4's rename delivery with Dovecot's `seconds.M<usec>P<pid>.host` names."""
    return (yield from run(request, STEPS))
