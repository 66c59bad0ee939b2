"""Drivers: run a sans-IO algorithm on the real operating system.

A driver only turns requests into `os` calls and replies into `send`s; it holds no delivery
logic. The model's driver is `maildircheck.model.kernel` (one request at a time, so the
checker can interleave processes).
"""
