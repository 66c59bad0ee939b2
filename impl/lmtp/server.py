"""`maildir-deliver --lmtp`: the LMTP server's I/O - sockets, sessions, the batch thread.

This module owns only I/O and waiting (spec M9): asyncio accepts connections on a UNIX
socket or a loopback TCP port, and runs one `impl.lmtp.protocol.Session` per connection
(writing its `Send`s, closing on `Closed`, and closing an idle connection after
`idle_timeout` seconds with 421 4.4.2, RFC 5321 4.5.3.2.7). A `Deliver` becomes one
`impl.batch.Job` per recipient; the `Batcher` hands every job waiting to one delivery
thread, which runs `impl.batch.deliver_batch` through `impl.drivers.run_batch_on_os` while
the next jobs gather: that is the group commit. Each `Answer` the batch makes resolves that
recipient's future; the session sends the replies once all its recipients are answered.
Nothing here decides a reply: outcomes become replies in `result_for`, by their class.

While a session waits for its answers it reads nothing more from its client (the
back-pressure the protocol leaves to the I/O layer). Message data is stored with LF line
endings (CRLF -> LF), as Dovecot (mail_save_crlf=no) and Postfix's local(8) store it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable

from maildircheck.impl.batch import Job, deliver_batch
from maildircheck.impl.drivers import run_batch_on_os
from maildircheck.impl.lmtp.mailboxes import NO_SUCH_USER, Mailbox, mailbox_for
from maildircheck.impl.lmtp.protocol import (
    Closed,
    Deliver,
    NeedData,
    RecipientResult,
    Refusal,
    Send,
    Session,
    Transaction,
)
from maildircheck.model.outcome import Delivered, Outcome, PermanentFailure, TemporaryFailure

READ_CHUNK = 65536
MAX_BATCH = 256  # jobs a batch holds open at once (an fd each), well below a 1024-fd limit


class Batcher:
    """Group commit: jobs from every session wait here; one thread delivers each batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tokens = itertools.count(1)
        self._waiting: list[tuple[Job, asyncio.Future[Outcome]]] = []
        self._ready = threading.Condition()
        self._stopping = False
        self.batches = 0  # batches run, and jobs in them (the server's summary)
        self.jobs = 0
        self._thread = threading.Thread(target=self._work, name="batches", daemon=True)
        self._thread.start()

    def token(self) -> int:
        return next(self._tokens)

    async def deliver(self, jobs: list[Job]) -> list[Outcome]:
        """Deliver `jobs` in the next batch; each outcome once its job is answered."""
        futures: list[asyncio.Future[Outcome]] = [self._loop.create_future() for _ in jobs]
        with self._ready:
            self._waiting += zip(jobs, futures, strict=True)
            self._ready.notify()
        return list(await asyncio.gather(*futures))

    def stop(self) -> None:
        """Finish the jobs already waiting, then end the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._stopping:
                    self._ready.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            self._run(batch)

    def _run(self, batch: list[tuple[Job, asyncio.Future[Outcome]]]) -> None:
        """One batch on the OS; each answer goes to its session's future at once."""
        self.batches += 1
        self.jobs += len(batch)
        futures = {job.token: future for job, future in batch}

        def on_answer(token: int, outcome: object) -> None:
            self._loop.call_soon_threadsafe(_settle, futures.pop(token), outcome)

        try:
            run_batch_on_os(deliver_batch([job for job, _ in batch]), on_answer)
        except Exception as err:  # a bug, not a verdict on the mail: let the client retry
            failure = TemporaryFailure(f"internal error: {type(err).__name__}: {err}")
            for future in futures.values():
                self._loop.call_soon_threadsafe(_settle, future, failure)


def _settle(future: asyncio.Future[Outcome], outcome: object) -> None:
    if not future.done():
        future.set_result(outcome)  # type: ignore[arg-type]


def result_for(recipient: str, outcome: Outcome) -> RecipientResult:
    """A recipient's reply for the outcome of its delivery."""
    if isinstance(outcome, Delivered):
        return RecipientResult.delivered(recipient, outcome.name)
    if isinstance(outcome, PermanentFailure):
        return RecipientResult.failed(recipient, outcome.reason)
    return RecipientResult.deferred(recipient, outcome.reason)


class Server:
    """The mail server of one mail user: every recipient maps to a Maildir by `template`."""

    def __init__(
        self,
        template: str,
        hostname: str,
        delimiter: str = "+",
        create: bool = False,
        max_size: int = 10_240_000,
        idle_timeout: float = 300.0,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.template, self.hostname, self.delimiter = template, hostname, delimiter
        self.create, self.max_size, self.idle_timeout = create, max_size, idle_timeout
        self.log = log
        self.batcher: Batcher | None = None
        self.sessions = 0  # sessions accepted so far
        self.open: set[asyncio.Task[None]] = set()  # the sessions' tasks
        self.answering = 0  # sessions between a Deliver and the write of its replies

    def check_recipient(self, address: str) -> Refusal | None:
        """RCPT: a name that could leave the mail root is refused, and (without --create)
        an address whose Maildir does not exist."""
        place = mailbox_for(self.template, address, self.delimiter)
        if isinstance(place, Refusal):
            return place
        if not self.create and not os.path.isdir(place.maildir):
            return NO_SUCH_USER
        return None

    def jobs_for(self, transaction: Transaction, batcher: Batcher) -> list[Job]:
        data = transaction.data.replace(b"\r\n", b"\n")
        jobs = []
        for recipient in transaction.recipients:
            place = mailbox_for(self.template, recipient, self.delimiter)
            assert isinstance(place, Mailbox)  # RCPT accepted it
            request = place.request(transaction.sender, recipient, create=self.create)
            jobs.append(Job(batcher.token(), request, data))
        return jobs

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, from the greeting to its close."""
        assert self.batcher is not None
        task = asyncio.current_task()
        assert task is not None
        self.sessions += 1
        self.open.add(task)
        session = Session(self.hostname, self.max_size, check_recipient=self.check_recipient)
        answering = False
        try:
            writer.write(session.greeting())
            while True:
                event = session.next_event()
                if isinstance(event, Send):
                    writer.write(event.data)
                    await writer.drain()
                    if answering:
                        answering = False
                        self.answering -= 1
                elif isinstance(event, Deliver):
                    answering = True
                    self.answering += 1
                    transaction = event.transaction
                    jobs = self.jobs_for(transaction, self.batcher)
                    outcomes = await self.batcher.deliver(jobs)
                    session.answer(
                        [
                            result_for(r, o)
                            for r, o in zip(transaction.recipients, outcomes, strict=True)
                        ]
                    )
                elif isinstance(event, Closed):
                    break
                elif isinstance(event, NeedData):
                    try:
                        data = await asyncio.wait_for(reader.read(READ_CHUNK), self.idle_timeout)
                    except TimeoutError:
                        idle = f"421 4.4.2 {self.hostname} idle too long, closing\r\n"
                        writer.write(idle.encode())
                        break
                    session.receive(data)
        except (ConnectionError, OSError) as err:
            self.log(f"session ended: {type(err).__name__}: {err}")
        finally:
            self.open.discard(task)
            if answering:
                self.answering -= 1
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
                await writer.wait_closed()


def parse_listen(address: str) -> tuple[str, int] | str:
    """`HOST:PORT` (a TCP port; HOST must be a loopback address) or a UNIX socket path."""
    host, colon, port = address.rpartition(":")
    if colon and port.isdigit() and not address.startswith("/"):
        host = host.strip("[]")
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback or not 0 < int(port) < 65536:
            raise ValueError(f"--lmtp listens on loopback only (127.0.0.1:PORT): {address!r}")
        return host, int(port)
    if not address.startswith("/"):
        raise ValueError(f"--lmtp takes an absolute socket path or HOST:PORT: {address!r}")
    return address


async def serve(
    server: Server,
    listen: tuple[str, int] | str,
    socket_mode: int = 0o660,
    ready: Callable[[str], None] = lambda where: None,
) -> None:
    """Accept sessions until SIGTERM or SIGINT; then finish the batches in flight."""
    loop = asyncio.get_running_loop()
    server.batcher = Batcher(loop)
    if isinstance(listen, str):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(listen).st_mode):
                os.unlink(listen)  # a socket left by a server that died
        listener = await asyncio.start_unix_server(server.session, path=listen)
        os.chmod(listen, socket_mode)
        where = f"unix:{listen}"
    else:
        host, port = listen
        listener = await asyncio.start_server(
            server.session, host, port, family=socket.AF_UNSPEC, reuse_address=True
        )
        bound = listener.sockets[0].getsockname()
        where = f"{bound[0]}:{bound[1]}"
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    ready(where)
    await stopped.wait()
    listener.close()  # no new sessions; the batches in flight are finished and answered
    await asyncio.to_thread(server.batcher.stop)
    for _ in range(100):  # up to 10 s for the answered sessions to write their replies
        if not server.answering:
            break
        await asyncio.sleep(0.1)
    for task in list(server.open):
        task.cancel()
    await asyncio.gather(*server.open, return_exceptions=True)
    if isinstance(listen, str):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(listen)
