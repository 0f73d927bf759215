"""Server-sent events (SSE) and OpenAI chat-completion chunks, parsed as pure functions.

An OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TGI, SGLang) streams an answer as
``text/event-stream``: lines ``data: {json}`` separated by blank lines, ending with
``data: [DONE]``. :class:`SSEParser` turns raw bytes — split anywhere, even inside a UTF-8
character or between ``\\r`` and ``\\n`` — into :class:`SSEEvent` s, following the WHATWG
event-stream rules (``data``/``event``/``id`` fields, ``:`` comments, multi-line data joined with
``\\n``, one leading space after the colon dropped). :func:`parse_chunk` reads one event's JSON as a
:class:`ChunkDelta` (text, finish reason, usage, in-stream error).

No I/O here; tested on literal byte strings.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

#: the data of the event that ends an OpenAI stream
DONE = "[DONE]"
#: the most bytes one line or one event may hold before the stream counts as malformed (a chat chunk is
#: well under 1 KB; without a bound a server sending one endless line would fill the memory)
MAX_EVENT_BYTES = 1 << 20


class EventTooLarge(ValueError):
    """A line or an event grew past :data:`MAX_EVENT_BYTES` without ending."""


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: ``data`` (lines joined by ``\\n``), ``event`` type (default ``message``), ``id``."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Incremental SSE parser: :meth:`feed` bytes, get the events completed by them.

    Lines end with ``\\n``, ``\\r\\n`` or a lone ``\\r``. Bytes are decoded as UTF-8 per complete
    line (a line break is never inside a multi-byte character), so a character split across two
    network reads is decoded whole. :meth:`close` dispatches nothing: an event without its closing
    blank line is incomplete (the stream was cut) and is reported by :attr:`pending`.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = int(max_event_bytes)
        self._size = 0  # bytes of the event being assembled
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._seen_field = False
        self._first_line = True

    @property
    def pending(self) -> bool:
        """True when bytes or fields of an unfinished event are buffered."""
        return bool(self._buf) or self._seen_field

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk`` (possibly none); :class:`EventTooLarge` past the size bound."""
        self._buf += chunk
        if len(self._buf) > self.max_event_bytes and b"\n" not in self._buf and b"\r" not in self._buf:
            raise EventTooLarge(f"a line of more than {self.max_event_bytes:,} bytes without a line break")
        out: list[SSEEvent] = []
        while True:
            i_n = self._buf.find(b"\n")
            i_r = self._buf.find(b"\r")
            if i_n < 0 and i_r < 0:
                break
            if i_r >= 0 and (i_n < 0 or i_r < i_n):
                if i_r == len(self._buf) - 1:
                    break  # a trailing \r may be the first half of \r\n: wait for the next byte
                line = self._buf[:i_r]
                skip = 2 if self._buf[i_r + 1:i_r + 2] == b"\n" else 1
                self._buf = self._buf[i_r + skip:]
            else:
                line = self._buf[:i_n]
                self._buf = self._buf[i_n + 1:]
            ev = self._line(line.decode("utf-8", errors="replace"))
            if ev is not None:
                out.append(ev)
        return out

    def _line(self, line: str) -> SSEEvent | None:
        if self._first_line:
            self._first_line = False
            if line.startswith("\ufeff"):
                line = line[1:]
        if line == "":
            if not self._seen_field:
                return None
            has_data = bool(self._data)  # an event with no data line is not dispatched (WHATWG)
            ev = SSEEvent("\n".join(self._data), self._event or "message", self._id)
            self._data, self._event, self._seen_field, self._size = [], "", False, 0
            return ev if has_data else None
        if line.startswith(":"):
            return None  # comment (keep-alive)
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                raise EventTooLarge(f"an event of more than {self.max_event_bytes:,} bytes")
            self._data.append(value)
            self._seen_field = True
        elif name == "event":
            self._event = value
            self._seen_field = True
        elif name == "id":
            if "\x00" not in value:
                self._id = value
            self._seen_field = True
        # "retry" and unknown fields are ignored, as the standard says
        return None


@dataclass(frozen=True)
class ChunkDelta:
    """What one streamed chat-completion chunk says.

    ``text``: new answer text ("" when the chunk has none); ``finish_reason``: the server's reason
    (``stop``, ``length`` …) or ``None``; ``prompt_tokens``/``completion_tokens``: from a ``usage``
    block when the server sends one; ``error``: an in-stream error message; ``done``: the ``[DONE]``
    sentinel; ``model``: the model that answered, if named.
    """

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    done: bool = False
    model: str | None = None


class ChunkFormatError(ValueError):
    """An event's data is neither ``[DONE]`` nor a chat-completion chunk."""


def parse_chunk(data: str) -> ChunkDelta:
    """One event's ``data`` as a :class:`ChunkDelta` (:class:`ChunkFormatError` for anything else).

    Reads ``choices[0].delta.content`` (chat) or ``choices[0].text`` (completion-style servers),
    ``choices[0].finish_reason``, a ``usage`` block and an ``error`` object or string.
    """
    s = data.strip()
    if s == DONE:
        return ChunkDelta(done=True)
    try:
        obj = json.loads(s)
    except ValueError as exc:
        raise ChunkFormatError(f"not JSON: {s[:120]!r}") from exc
    if not isinstance(obj, dict):
        raise ChunkFormatError(f"not a JSON object: {s[:120]!r}")
    err = obj.get("error")
    if err:
        msg = err.get("message") if isinstance(err, dict) else str(err)
        return ChunkDelta(error=str(msg or err))
    text, finish = "", None
    choices = obj.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise ChunkFormatError("'choices' is not a list")
    if choices:
        c0 = choices[0] or {}
        delta = c0.get("delta") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        if piece is None:
            piece = c0.get("text")
        text = piece if isinstance(piece, str) else ""
        finish = c0.get("finish_reason") or None
    usage = obj.get("usage") or {}
    pt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    ct = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if choices is None and not usage:
        raise ChunkFormatError(f"no 'choices' or 'usage' in {s[:120]!r}")
    return ChunkDelta(text=text, finish_reason=finish, prompt_tokens=_int(pt), completion_tokens=_int(ct),
                      model=obj.get("model") if isinstance(obj.get("model"), str) else None)


def _int(v) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")) or not v.is_integer():
            return -1  # not a count: fails the plausibility check (checked_usage), never silently rounded
        return int(v)
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return -1


@dataclass(frozen=True)
class UsageCheck:
    """A server's usage counts after :func:`checked_usage`: each count kept (``int``) or unknown (``None``),
    with ``notes`` saying which was dropped and why."""

    prompt_tokens: int | None
    completion_tokens: int | None
    notes: tuple[str, ...] = ()


def checked_usage(prompt_tokens: int | None, completion_tokens: int | None, *, streamed_chunks: int,
                  streamed_bytes: int, request_bytes: int, context_len: int | None) -> UsageCheck:
    """Believe a server's token counts only when they can be true.

    ``completion_tokens`` must lie in ``[1 if anything was streamed else 0, streamed_bytes + streamed_chunks +
    16]`` (a token carries at least part of one byte, and a chunk at least one token); ``prompt_tokens`` in
    ``[0, request_bytes + 1024]`` (a chat template adds at most a few hundred tokens) and within
    ``context_len`` when the context is known; their sum within ``context_len`` too. A count outside its
    bounds is returned as ``None`` (unknown) with a note; ``None`` in stays ``None``."""
    notes: list[str] = []
    pt, ct = prompt_tokens, completion_tokens
    if ct is not None:
        low = 1 if streamed_chunks else 0
        high = streamed_bytes + streamed_chunks + 16
        if not low <= ct <= high:
            notes.append(f"the server reported {ct} completion tokens for {streamed_chunks} streamed chunks "
                         f"({streamed_bytes} bytes), which cannot be; stored as unknown")
            ct = None
    if pt is not None:
        high = request_bytes + 1024
        if context_len:
            high = min(high, int(context_len))
        if not 0 <= pt <= high:
            notes.append(f"the server reported {pt} prompt tokens for a {request_bytes}-byte request"
                         + (f" and a {context_len}-token context" if context_len else "") + "; stored as unknown")
            pt = None
    if pt is not None and ct is not None and context_len and pt + ct > context_len + 16:
        notes.append(f"the server reported {pt} + {ct} tokens, more than the {context_len}-token context; "
                     "both stored as unknown")
        pt = ct = None
    return UsageCheck(pt, ct, tuple(notes))


#: the server's finish reasons in Sprout's words (``eos``: the model stopped; ``length``: the cap)
FINISH_REASONS = {"stop": "eos", "eos": "eos", "eos_token": "eos", "stop_sequence": "eos", "length": "length",
                  "max_tokens": "length", "model_length": "length", "abort": "error", "error": "error",
                  "content_filter": "eos", "tool_calls": "eos"}


def finish_reason(server_reason: str | None) -> str:
    """Sprout's ``eos`` / ``length`` / ``error`` for a server's finish reason (unknown reasons: ``eos``)."""
    return FINISH_REASONS.get((server_reason or "").lower(), "eos")
