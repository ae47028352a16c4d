"""Bounded, stoppable hand-over between threads: what every stage of the engine and every reader share.

A producer waits when the queue is full, so memory stays at `size` items
however slow the consumer is, and nothing is ever dropped (live sources drop
in their own buffer, before this). Once the run's stop event is set nobody
waits any more: puts give up, gets raise `Stopped`. A producer's error
travels to the consumer and is raised there.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class Stopped(Exception):
    """The run was stopped; the stage or reader ends quietly."""


class Failure:
    """A producer's error, handed over to be raised in the consumer's thread."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


# The end of a channel's items (a sentinel, not a status: statuses are the enums in streamsink.types).
END = object()


def _until_end(get: Callable[[], Any]) -> Iterator[Any]:
    """The items `get()` gives until END; a Failure among them is raised here, in the consumer's thread."""
    while True:
        item = get()
        if item is END:
            return
        if isinstance(item, Failure):
            raise item.error
        yield item


class Channel:
    """A bounded queue between two threads that gives up waiting once `stop` is set."""

    def __init__(self, size: int, stop: threading.Event) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = stop

    def put(self, item: Any) -> bool:
        """Hand over `item`, waiting while full; False once stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float | None = None) -> Any:
        """The next item; raises queue.Empty after `timeout`, Stopped once stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            wait = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if wait <= 0:
                return self._queue.get_nowait()
            try:
                return self._queue.get(timeout=wait)
            except queue.Empty:
                continue
        raise Stopped

    def __iter__(self) -> Iterator[Any]:
        """Items until the producer puts END; a Failure it put is raised here."""
        return _until_end(self.get)

    def qsize(self) -> int:
        return self._queue.qsize()

    def clear(self) -> None:
        """Drop what is waiting (after a stop), so a blocked producer's last put finds room."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


class ReadAhead:
    """Runs `produce()` in a thread of its own and hands its items over a Channel of `size`."""

    def __init__(self, produce: Callable[[], Iterator[Any]], size: int, name: str) -> None:
        self._stop = threading.Event()
        self._channel = Channel(size, self._stop)
        self._thread = threading.Thread(target=self._run, args=(produce,), name=f"streamsink-read-{name}", daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[], Iterator[Any]]) -> None:
        try:
            items = produce()
            try:
                for item in items:
                    if not self._channel.put(item):
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        except BaseException as error:  # handed to the consumer, raised there
            self._channel.put(Failure(error))
        else:
            self._channel.put(END)

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._channel
        except Stopped:
            return

    def qsize(self) -> int:
        return self._channel.qsize()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the producer and wait for it; False if it did not stop in time."""
        self._stop.set()
        self._channel.clear()
        self._thread.join(timeout)
        return not self._thread.is_alive()


class NewestFrames:
    """Live frames waiting for the detector: the newest `keep` of each live source, everything else in order.

    The engine's inbox for live runs. A frame that sat in a queue while the
    detector was busy is a frame shown late; so when a live source has `keep`
    frames waiting, a newer one pushes out the oldest, which is dropped. Drops are
    counted per source and added to `Frame.dropped` of the frames that follow,
    so the source's own drops and these are one count from source to JSONL.
    Frames that must not be dropped (`droppable(frame)` False: a file in a
    live run), END and Failure wait in order, at most `size` of them.
    """

    def __init__(self, stop: threading.Event, droppable: Callable[[Any], bool] | None = None, size: int = 4,
                 keep: int = 1) -> None:
        from collections import deque

        self._stop = stop
        self._keep = max(1, keep)
        self._droppable = droppable or (lambda frame: True)
        self._size = max(1, size)
        self._items: deque = deque()
        self._kept = 0  # items waiting that are not droppable frames
        self._dropped: dict[str, int] = {}
        self._cond = threading.Condition()

    def _is_live_frame(self, item: Any) -> bool:
        return hasattr(item, "source") and hasattr(item, "dropped") and self._droppable(item)

    def put(self, item: Any) -> bool:
        """Hand over `item`; a live frame never waits. False once stopped."""
        with self._cond:
            if self._is_live_frame(item):
                mine = [i for i, waiting in enumerate(self._items)
                        if self._is_live_frame(waiting) and waiting.source == item.source]
                if len(mine) >= self._keep:
                    del self._items[mine[0]]
                    self._dropped[item.source] = self._dropped.get(item.source, 0) + 1
            else:
                while self._kept >= self._size:
                    if self._stop.is_set():
                        return False
                    self._cond.wait(0.05)
                self._kept += 1
            if self._stop.is_set():
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Any:
        """The next item; raises queue.Empty after `timeout`, Stopped once stopped."""
        import dataclasses

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._stop.is_set():
                if self._items:
                    item = self._items.popleft()
                    if not self._is_live_frame(item):
                        self._kept -= 1
                        self._cond.notify_all()
                        return item
                    dropped = self._dropped.get(item.source, 0)
                    return dataclasses.replace(item, dropped=item.dropped + dropped) if dropped else item
                wait = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if wait <= 0:
                    raise queue.Empty
                self._cond.wait(wait)
        raise Stopped

    def __iter__(self) -> Iterator[Any]:
        return _until_end(self.get)
