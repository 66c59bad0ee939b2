"""`maildircheck trace`: any delivery program run under strace, replayed in the model, judged."""
