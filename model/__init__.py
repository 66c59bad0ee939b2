"""Pure semantics of Maildir delivery: syscalls, file systems under crashes, properties."""
