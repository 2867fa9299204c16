"""Server-Sent Events, both ends: :func:`frame` writes one event, :class:`SseParser` reads them.

Only what the config stream uses: ``event``, ``data`` (several lines join with newlines),
``id`` (which, as the spec says, carries over to later events until another is set) and
``:`` comments (heartbeats); ``retry`` is ignored. A frame ends at a blank line. Pure: the
caller feeds lines (without their line ending) and gets complete events back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None


def frame(event: str, data: str, event_id: str | None = None) -> bytes:
    """One event as bytes on the wire (``data`` may hold newlines)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    """A comment line: keeps the connection warm, dispatches no event."""
    return f": {text}\n\n".encode()


class SseParser:
    """Feed lines with :meth:`feed`; it returns the event a blank line completed, if any.

    ``max_data_chars`` bounds one event's data: past it the event is dropped (a runaway
    stream must not grow the client's memory without bound).
    """

    def __init__(self, max_data_chars: int = 4 * 1024 * 1024) -> None:
        self._max = max_data_chars
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None
        self._overflow = False
        self.comments = 0

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._size += len(value) + 1
            if self._size > self._max:
                self._overflow = True
            else:
                self._data.append(value)
        elif name == "id":
            self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
        had_data = bool(self._data)
        overflow = self._overflow
        self._event, self._data, self._size, self._overflow = "", [], 0, False
        if overflow or not had_data:
            return None
        return event
