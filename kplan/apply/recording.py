"""Changes finishing together are written to state in one transaction.

Every finished change is recorded before anything that depends on it starts,
so each write must be committed (on disk, or in PostgreSQL) when ``put`` or
``delete`` returns. Committing each on its own made the state the bottleneck
of a wide apply: a commit waits for the disk (SQLite's synchronous=FULL), and
with ten changes finishing at once nine of them queued behind the first.

:class:`GroupCommit` is the usual group commit: the first writer to find no
commit under way becomes the leader and commits every write queued so far in
one transaction; writers arriving meanwhile wait, and the next of them leads
the next commit. A lone change commits at once, as before; ten at once cost
about two commits, not ten. Each write still returns only once committed; a
failed commit is retried write by write, so a write the state refuses fails
its own change alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from kplan.diagnostics import KplanError
from kplan.state.records import ResourceRecord

__all__ = ["BatchStore", "GroupCommit"]


class BatchStore(Protocol):
    def record(self, changes: Sequence[tuple[str, ResourceRecord | None]]) -> None:
        """Puts (a record) and deletes (None), by address, in one committed transaction."""


class _Write:
    __slots__ = ("address", "done", "error", "record")

    def __init__(self, address: str, record: ResourceRecord | None) -> None:
        self.address = address
        self.record = record
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """A Recorder (kplan.apply.change) whose writes from many threads commit together."""

    def __init__(self, store: BatchStore) -> None:
        self._store = store
        self._cv = threading.Condition()
        self._queue: list[_Write] = []
        self._committing = False
        self.commits = 0  # how many transactions: for tests and benchmarks

    def put(self, record: ResourceRecord) -> None:
        self._write(_Write(record.address, record))

    def delete(self, address: str) -> None:
        self._write(_Write(address, None))

    def _write(self, w: _Write) -> None:
        batch: list[_Write] | None = None
        with self._cv:
            self._queue.append(w)
            while self._committing and not w.done:
                self._cv.wait()
            if not w.done:  # no commit under way: lead one, of everything queued
                batch, self._queue = self._queue, []
                self._committing = True
        if batch is not None:
            self._commit(batch)
        if w.error is not None:
            if isinstance(w.error, KplanError):  # each thread raises its own
                raise KplanError(w.error.diagnostics)
            raise w.error

    def _commit(self, batch: list[_Write]) -> None:
        commits = 1
        try:
            self._store.record([(w.address, w.record) for w in batch])
        except Exception as exc:
            # The transaction wrote nothing. One write may be the cause (a value
            # the state cannot hold): commit each alone, so only that one fails
            # and its siblings, done on their hosts, are recorded.
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for w in batch:
                    commits += 1
                    try:
                        self._store.record([(w.address, w.record)])
                    except Exception as alone:
                        w.error = alone
        except BaseException as exc:  # interrupted: every write of the batch failed with it
            for w in batch:
                w.error = exc
        with self._cv:
            self.commits += commits
            for w in batch:
                w.done = True
            self._committing = False
            self._cv.notify_all()
