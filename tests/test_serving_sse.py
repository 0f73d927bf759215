"""SSE and chat-completion chunk parsing, on literal byte strings (split anywhere)."""
from __future__ import annotations

import pytest

from sprout_core.serving.sse import ChunkFormatError, SSEEvent, SSEParser, finish_reason, parse_chunk

VLLM_STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"meta-llama/Llama-2-7b-chat-hf",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":" w\xc3\xb6rld \xf0\x9f\x8c\xb1"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n'
    b"data: [DONE]\n\n"
)


def _all(parser: SSEParser, pieces) -> list[SSEEvent]:
    out = []
    for p in pieces:
        out += parser.feed(p)
    return out


def test_whole_stream_gives_one_event_per_data_line():
    events = SSEParser().feed(VLLM_STREAM)
    assert len(events) == 6
    assert events[-1].data == "[DONE]"
    deltas = [parse_chunk(e.data) for e in events]
    assert "".join(d.text for d in deltas) == "Hello wörld 🌱"
    assert deltas[3].finish_reason == "stop"
    assert (deltas[4].prompt_tokens, deltas[4].completion_tokens) == (12, 3)
    assert deltas[5].done and deltas[0].model == "meta-llama/Llama-2-7b-chat-hf"


def test_split_at_any_byte_gives_the_same_events():
    # a read boundary anywhere — inside a UTF-8 character, a field name, the blank line — changes nothing
    whole = SSEParser().feed(VLLM_STREAM)
    for cut in range(1, len(VLLM_STREAM)):
        assert _all(SSEParser(), [VLLM_STREAM[:cut], VLLM_STREAM[cut:]]) == whole, cut
    utf8 = VLLM_STREAM.index(b"\xc3")  # split inside "ö"
    events = _all(SSEParser(), [VLLM_STREAM[:utf8 + 1], VLLM_STREAM[utf8 + 1:]])
    assert parse_chunk(events[2].data).text == " wörld 🌱"


def test_byte_by_byte_and_crlf_and_lone_cr_line_ends():
    crlf = VLLM_STREAM.replace(b"\n", b"\r\n")
    cr = VLLM_STREAM.replace(b"\n", b"\r")
    whole = SSEParser().feed(VLLM_STREAM)
    assert _all(SSEParser(), [crlf[i:i + 1] for i in range(len(crlf))]) == whole
    p = SSEParser()
    got = _all(p, [cr[i:i + 1] for i in range(len(cr))])
    # a lone \r at the very end may still be the first half of \r\n: the last blank line waits for one more byte
    got += p.feed(b"x")
    assert [e.data for e in got] == [e.data for e in whole]


def test_comments_fields_multiline_data_and_undispatched_tail():
    raw = (b": keep-alive\n\nevent: error\ndata: {\"error\": {\"message\": \"boom\"}}\n\n"
           b"id: 7\ndata:first\ndata: second\nretry: 100\n\nevent: ping\n\ndata: {\"choices\": [")
    p = SSEParser()
    ev = p.feed(raw)
    assert ev == [SSEEvent('{"error": {"message": "boom"}}', "error", None), SSEEvent("first\nsecond", "message", "7")]
    assert parse_chunk(ev[0].data).error == "boom"
    assert p.pending  # an event without its closing blank line: the stream was cut


def test_bom_is_dropped_and_empty_data_line_still_dispatches():
    ev = SSEParser().feed(b"\xef\xbb\xbfdata: [DONE]\n\ndata:\n\n")
    assert [e.data for e in ev] == ["[DONE]", ""]


def test_parse_chunk_variants_and_errors():
    assert parse_chunk('{"choices":[{"text":"abc","finish_reason":"length"}]}').text == "abc"  # completion-style
    assert parse_chunk('{"choices":[{"delta":{"content":null},"finish_reason":null}]}').text == ""
    assert parse_chunk('{"error":"model not loaded"}').error == "model not loaded"
    assert parse_chunk('{"usage":{"completion_tokens":"9"}}').completion_tokens == 9
    for bad in ("not json", "[1,2]", '{"foo": 1}', '{"choices": 3}'):
        with pytest.raises(ChunkFormatError):
            parse_chunk(bad)


def test_finish_reasons_in_sprouts_words():
    assert finish_reason("stop") == "eos"
    assert finish_reason("length") == "length"
    assert finish_reason("abort") == "error"
    assert finish_reason(None) == "eos"
