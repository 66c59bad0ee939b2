"""Where an LMTP recipient's mail goes: an address mapped to a Maildir by a template.

This module owns the mapping of `maildir-deliver --lmtp` (spec M9): a recipient
`local+extension@domain` is lowercased (as Dovecot's default auth_username_format %Lu
does), split at the first recipient delimiter, and put into the template's `%d` (domain),
`%n` (the local part without its extension), `%u` (local part @ domain, without the
extension) and `%%` (a percent sign). The extension picks a Maildir++ folder only when
that folder already exists (the sender chose it), as `--extension-folder` does.

A name that could leave the mail root - empty, `.` or `..`, starting with a dot, holding
`/`, a NUL or another control character - is refused before any path is built, and so is
a template that would put a recipient's name anywhere but inside its own directory names.
"""

from __future__ import annotations

import os

from maildircheck.impl.lmtp.protocol import Refusal
from maildircheck.model.outcome import DeliveryRequest

BAD_ADDRESS = Refusal(553, "5.1.3", "mailbox name not allowed")
NO_SUCH_USER = Refusal(550, "5.1.1", "no such mailbox here")


class TemplateError(ValueError):
    """A --maildir template that cannot be used (said in one line)."""


def check_template(template: str) -> None:
    """Refuse a template with no recipient part, a relative path or an unknown escape."""
    if not template.startswith("/"):
        raise TemplateError(f"--maildir template must be an absolute path: {template!r}")
    i, found = 0, False
    while i < len(template):
        if template[i] == "%":
            code = template[i + 1 : i + 2]
            if code not in ("d", "n", "u", "%"):
                raise TemplateError(f"--maildir template: unknown escape %{code} in {template!r}")
            found = found or code != "%"
            i += 2
        else:
            i += 1
    if not found:
        raise TemplateError(f"--maildir template names no recipient (%d, %n, %u): {template!r}")


def _name_ok(part: str) -> bool:
    """Whether `part` can be one directory name under the mail root."""
    return (
        bool(part)
        and not part.startswith(".")
        and "/" not in part
        and part.isprintable()
        and "\\" not in part
    )


class Mailbox:
    """One recipient's place: the maildir and the folder its extension names ("" none)."""

    __slots__ = ("folder", "maildir")

    def __init__(self, maildir: str, folder: str) -> None:
        self.maildir, self.folder = maildir, folder

    def request(self, sender: str, recipient: str, create: bool = False) -> DeliveryRequest:
        """The delivery of this recipient's copy: Return-Path and Delivered-To (D2), the
        folder if it exists (D4), the size in the name (D5); `create` makes a missing
        maildir (never the folder, which the sender names)."""
        return DeliveryRequest(
            self.maildir,
            create_dirs=create,
            return_path=True,
            sender=sender,
            delivered_to=recipient,
            folder=self.folder,
            folder_fallback=bool(self.folder),
            size_in_name=True,
        )


def mailbox_for(template: str, address: str, delimiter: str = "+") -> Mailbox | Refusal:
    """The recipient's mailbox under `template`, or the refusal to send at RCPT."""
    local, at, domain = address.lower().rpartition("@")
    if not at:
        local, domain = domain, ""
    extension = ""
    if delimiter and delimiter in local:
        local, _, extension = local.partition(delimiter)
    if not _name_ok(local) or (domain and not _name_ok(domain)):
        return BAD_ADDRESS
    if ("%d" in template or "%u" in template) and not domain:
        return BAD_ADDRESS
    parts = {"d": domain, "n": local, "u": f"{local}@{domain}" if domain else local, "%": "%"}
    out, i = [], 0
    while i < len(template):
        if template[i] == "%":
            out.append(parts[template[i + 1]])
            i += 2
        else:
            out.append(template[i])
            i += 1
    maildir = os.path.normpath("".join(out))
    folder = extension if _name_ok(extension) else ""
    return Mailbox(maildir, folder)
