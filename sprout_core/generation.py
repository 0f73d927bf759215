"""Streaming generation under a directive, with one result record per answer.

``stream_generate`` runs ``model.generate`` in a worker thread and yields text chunks through
a :class:`~transformers.TextIteratorStreamer`. :data:`GENERATION_LOCK`, a process-wide fair queue
(:class:`GenerationQueue`: re-entrant, first come first served, usable like ``threading.RLock``),
serialises generation on a shared model so concurrent browser sessions neither crash nor
interleave, and tells a waiting caller how many answers are ahead of it. To measure energy for
exactly one request, hold it around both the energy window and the stream::

    with GENERATION_LOCK.turn(on_wait=lambda ahead: print(f"{ahead} ahead")):
        with meter.window() as w:
            for chunk in stream_generate(lm, prompt, directive, params):
                ...

The stream yields a chunk at least every :data:`HEARTBEAT_S` seconds, with empty text while the
model is still reading the prompt, so a caller can show progress and live energy. A failure in
the worker ends the stream (``result.error`` set, ``finish_reason='error'``) instead of hanging
the caller; a consumer that stops early (closes the stream) stops the worker, and the stream's
``result`` holds the partial answer with ``finish_reason='aborted'``.

**Backends.** ``lm`` is any object with the small :class:`Backend` interface: the in-process
transformers model (:class:`~sprout_core.models.LoadedModel`), the in-process llama.cpp model
(:mod:`sprout_core.serving.llamacpp`) or an OpenAI-compatible server
(:mod:`sprout_core.serving.client`). All yield the same :class:`StreamChunk` s and end with the same
:class:`GenerationResult` (its ``backend`` says which one answered), so callers do not care which.
Only backends that run in this process need the lock (``needs_lock``); a serving engine schedules
concurrent requests itself, so :func:`generation_lock` gives it none.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Protocol

from sprout_core import validate
from sprout_core.directives import Directive, Placement, build_messages
from sprout_core.errors import InputError
from sprout_core.models import LoadedModel

_log = logging.getLogger("sprout.generation")


@dataclass(frozen=True)
class QueueStatus:
    """A snapshot of the generation queue: ``busy`` (an answer is being generated), ``waiting``
    (callers queued behind it) and ``holder`` (the label the current holder gave, e.g. "Playground")."""

    busy: bool
    waiting: int
    holder: str = ""

    @property
    def ahead(self) -> int:
        """How many answers a caller arriving now would wait for."""
        return self.waiting + (1 if self.busy else 0)


class GenerationQueue:
    """A fair, re-entrant lock for the in-process model that says how many turns are ahead.

    A *turn* is what one caller holds: an answer for the CLI or an evaluation run, a whole run (every level
    of one prompt) for the Playground and the lesson (:func:`sprout_core.run.execute` takes one turn for all
    its levels; the answers inside re-enter it), so visitors are served run by run.

    Drop-in for ``threading.RLock`` (``with``, ``acquire(blocking, timeout)``, ``release``). Callers
    are served first come, first served. :meth:`acquire` takes ``on_wait(ahead)``, called every
    ``poll_s`` seconds in the waiting thread while it waits, with the number of answers ahead of it
    (the one being generated plus the callers queued before it). If ``on_wait`` raises (e.g. the
    page was stopped), the caller leaves the queue and the exception propagates.
    """

    def __init__(self, poll_s: float = 0.4) -> None:
        self.poll_s = poll_s
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._holder = ""
        self._waiting: list[object] = []

    def _ahead(self, ticket: object) -> int:
        return self._waiting.index(ticket) + (1 if self._owner is not None else 0)

    def acquire(self, blocking: bool = True, timeout: float = -1, *, label: str = "",
                on_wait: Callable[[int], None] | None = None) -> bool:
        """Take the model (re-entrant); False on ``blocking=False`` or after ``timeout`` seconds."""
        if not blocking:
            with self._cond:
                return self._take_now(label)
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        waiting = self.take(label, deadline)
        try:
            for ahead in waiting:
                if on_wait is not None:
                    on_wait(ahead)  # outside the internal lock: it may be slow or raise
        finally:
            waiting.close()  # on_wait raised: leave the queue
        return self.held_by_me()

    def _take_now(self, label: str) -> bool:
        """Under ``_cond``: take the model if this thread holds it already or nobody holds or waits for it."""
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        if self._owner is None and not self._waiting:
            self._owner, self._depth, self._holder = me, 1, label
            return True
        return False

    def take(self, label: str = "", deadline: float | None = None) -> Iterator[int]:
        """Take the model, first come first served, as a generator: while others are ahead it yields how many
        (the holder plus the callers queued before this one) about every ``poll_s`` seconds; it ends once this
        thread holds the model (release it with :meth:`release`) or at ``deadline`` (``time.monotonic()``)
        without it. Closing it early (the caller stopped waiting) leaves the queue. A caller that yields the
        count on (e.g. :func:`sprout_core.run.execute`) can report progress without a callback::

            waiting = GENERATION_LOCK.take("Playground")
            try:
                for ahead in waiting:
                    show(f"{ahead} ahead")
            finally:
                waiting.close()
        """
        me = threading.get_ident()
        with self._cond:
            if self._take_now(label):
                return
            ticket = object()
            self._waiting.append(ticket)
        got = False
        try:
            while True:
                with self._cond:
                    if self._owner is None and self._waiting[0] is ticket:
                        self._waiting.pop(0)
                        self._owner, self._depth, self._holder = me, 1, label
                        got = True
                        return
                    ahead = self._ahead(ticket)
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                yield ahead
                with self._cond:
                    if not (self._owner is None and self._waiting[0] is ticket):
                        self._cond.wait(self.poll_s if left is None else max(0.001, min(self.poll_s, left)))
        finally:
            if not got:
                with self._cond:
                    if ticket in self._waiting:
                        self._waiting.remove(ticket)
                        self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release the generation queue: this thread does not hold it")
            self._depth -= 1
            if self._depth == 0:
                self._owner, self._holder = None, ""
                self._cond.notify_all()

    def __enter__(self) -> "GenerationQueue":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextlib.contextmanager
    def turn(self, label: str = "", on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """``with GENERATION_LOCK.turn(on_wait=...):`` — :meth:`acquire` with a progress callback."""
        self.acquire(label=label, on_wait=on_wait)
        try:
            yield
        finally:
            self.release()

    def status(self) -> QueueStatus:
        """Who holds the model now and how many wait."""
        with self._cond:
            return QueueStatus(self._owner is not None, len(self._waiting), self._holder)

    def held_by_me(self) -> bool:
        with self._cond:
            return self._owner == threading.get_ident()


#: Serialises generation (and the energy windows around it) across threads/sessions.
GENERATION_LOCK = GenerationQueue()


def needs_lock(lm: Any) -> bool:
    """True for a backend that generates in this process (one answer at a time), False for a server."""
    return bool(getattr(lm, "needs_lock", True))


def generation_lock(lm: Any, label: str = "", on_wait: Callable[[int], None] | None = None) -> ContextManager:
    """The lock to hold around ``lm``'s energy window and stream: a turn in :data:`GENERATION_LOCK` for an
    in-process backend (``on_wait(ahead)`` is called while others are ahead, ``label`` names the caller to
    them), none for a serving engine (it batches concurrent requests itself)."""
    return GENERATION_LOCK.turn(label, on_wait) if needs_lock(lm) else contextlib.nullcontext()


#: Longest prompt the UI accepts, in characters (the model's context is checked in tokens too).
MAX_PROMPT_CHARS = 20_000
#: Seconds the stream waits for the next chunk before it gives up on a stuck worker.
CHUNK_TIMEOUT_S = 600.0
#: The stream yields a (possibly empty) chunk at least this often, so callers can show progress.
HEARTBEAT_S = 0.5
#: ``finish_reason`` of an answer whose consumer stopped early (page reloaded, Stop pressed …).
ABORTED = "aborted"


class PromptError(InputError):
    """The prompt cannot be generated from (empty, or longer than the model's context)."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings. Greedy (reproducible) unless ``do_sample``.

    Attributes:
        max_new_tokens: cap on generated tokens.
        do_sample: sample instead of greedy decoding.
        temperature: sampling temperature (used only when sampling).
        top_p: nucleus sampling mass (used only when sampling).
        seed: RNG seed for sampling (None: not reseeded).
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not 1 <= int(self.max_new_tokens) <= 8192:
            raise ValueError("max_new_tokens must be between 1 and 8192")
        if self.do_sample and not (0.0 < self.temperature <= 5.0):
            raise ValueError("temperature must be in (0, 5]")
        if self.do_sample and not (0.0 < self.top_p <= 1.0):
            raise ValueError("top_p must be in (0, 1]")


@dataclass(frozen=True)
class StreamChunk:
    """A piece of streamed text.

    Attributes:
        text: new text since the previous chunk ("" for a heartbeat).
        new_tokens: tokens generated so far (0 while the model is still reading the prompt).
        elapsed_s: seconds since generation started.
        prompt_tokens: tokens of the prompt with its chat template and directive.
    """

    text: str
    new_tokens: int
    elapsed_s: float
    prompt_tokens: int = 0

    @property
    def reading_prompt(self) -> bool:
        """True until the first new token: the model is still reading (pre-filling) the prompt."""
        return self.new_tokens == 0


@dataclass
class GenerationResult:
    """One answer under one directive level.

    Times are wall-clock seconds; ``ttft_s`` is the time to the first new token;
    ``tokens_per_s`` is new tokens ÷ total seconds. ``finish_reason`` is ``eos`` (the model
    stopped), ``length`` (hit ``max_new_tokens``), ``error`` or ``aborted`` (the consumer stopped
    early). ``partial``: the answer was cut mid-stream (``error`` or ``aborted`` says why) and ``text``
    holds what arrived before. ``backend``: ``transformers``, ``llama.cpp`` (both in process) or
    ``server`` (an OpenAI-compatible engine). ``prompt_tokens`` is ``None`` when a server does not report it.
    """

    level: str
    directive: str
    prompt: str
    text: str = ""
    prompt_tokens: int | None = 0
    new_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    tokens_per_s: float | None = None
    finish_reason: str = "eos"
    model: str = ""
    device: str = ""
    placement: str = ""
    max_new_tokens: int = 0
    max_new_tokens_capped: bool = False
    do_sample: bool = False
    seed: int | None = None
    started_at: float = 0.0
    error: str | None = None
    backend: str = "transformers"
    partial: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def aborted(self) -> bool:
        return self.finish_reason == ABORTED


class AnswerStream(Protocol):
    """What every backend's stream offers: iterate for :class:`StreamChunk` s; ``result`` once exhausted;
    ``on_tokens`` (set before iterating) is called with the running token count as tokens are produced,
    from whichever thread produces them (energy attribution on a shared server uses it)."""

    result: GenerationResult | None
    on_tokens: Callable[[int], None] | None

    def __iter__(self) -> Iterator[StreamChunk]: ...


class Backend(Protocol):
    """A generation backend: ``info`` (:class:`~sprout_core.models.ModelInfo`), its ``backend`` name,
    whether it ``needs_lock`` (runs in this process) and :meth:`open_stream` (raises ``PromptError`` at
    once on a bad prompt)."""

    info: Any
    backend: str
    needs_lock: bool

    def open_stream(self, prompt: str, directive: Directive, params: "GenerationParams",
                    placement: Placement | None = None) -> AnswerStream: ...


def check_prompt(prompt: str) -> None:
    """PromptError for an empty prompt or one over :data:`MAX_PROMPT_CHARS` (every backend checks this)."""
    if not prompt or not prompt.strip():
        raise PromptError("The prompt is empty: type a question or instruction first.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PromptError(f"The prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}.")
    try:
        validate.text("The prompt", prompt)  # unpaired surrogates would crash a tokenizer or a server's JSON
    except InputError as exc:
        raise PromptError(str(exc)) from None


def prepare_inputs(lm: LoadedModel, prompt: str, directive: Directive, placement: Placement | None = None):
    """Token ids and attention mask for ``prompt`` under ``directive`` via the chat template."""
    check_prompt(prompt)
    messages = build_messages(prompt, directive, placement or lm.info.placement)  # type: ignore[arg-type]
    enc = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ids = enc["input_ids"]
    if ids.shape[1] >= lm.info.context_len:
        raise PromptError(
            f"The prompt is {ids.shape[1]:,} tokens with its chat template; {lm.info.name} "
            f"reads at most {lm.info.context_len:,} tokens (prompt + answer). Shorten it."
        )
    return enc


def _make_streamer(tokenizer, timeout: float, on_tokens: Callable[[int], None] | None = None):
    from transformers import TextIteratorStreamer

    class _CountingStreamer(TextIteratorStreamer):
        """TextIteratorStreamer that also counts new tokens and stamps the first one."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.count = 0
            self.first_token_t: float | None = None

        def put(self, value):  # noqa: D401 - transformers API
            if self.skip_prompt and self.next_tokens_are_prompt:
                return super().put(value)
            if self.first_token_t is None:
                self.first_token_t = time.perf_counter()
            self.count += int(value.numel())
            if on_tokens is not None:
                on_tokens(self.count)
            return super().put(value)

    return _CountingStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout)


def _cancel_criteria(cancel: threading.Event):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # noqa: D401 - transformers API
            import torch

            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancel()])


class GenerationStream:
    """Iterate for :class:`StreamChunk`s; :attr:`result` is set once the stream is exhausted."""

    def __init__(self, lm: LoadedModel, prompt: str, directive: Directive, params: GenerationParams,
                 placement: Placement | None = None, chunk_timeout_s: float = CHUNK_TIMEOUT_S,
                 heartbeat_s: float = HEARTBEAT_S):
        self.lm = lm
        self.prompt = prompt
        self.directive = directive
        self.params = params
        self.placement = placement or lm.info.placement
        self.chunk_timeout_s = chunk_timeout_s
        self.heartbeat_s = heartbeat_s
        self.result: GenerationResult | None = None
        self.on_tokens: Callable[[int], None] | None = None
        # Validate before anything runs so bad input raises at once, not mid-iteration.
        self._enc = prepare_inputs(lm, prompt, directive, self.placement)  # type: ignore[arg-type]

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prompt with its chat template and directive (known before generation starts)."""
        return int(self._enc["input_ids"].shape[1])

    def __iter__(self) -> Iterator[StreamChunk]:
        import torch

        lm, params = self.lm, self.params
        ids = self._enc["input_ids"].to(lm.info.device)
        mask = self._enc["attention_mask"].to(lm.info.device)
        n_prompt = int(ids.shape[1])
        room = lm.info.context_len - n_prompt
        max_new = min(int(params.max_new_tokens), room)
        res = GenerationResult(
            level=self.directive.level, directive=self.directive.text, prompt=self.prompt, prompt_tokens=n_prompt,
            model=lm.info.name, device=lm.info.device, placement=self.placement, max_new_tokens=max_new,
            max_new_tokens_capped=max_new < params.max_new_tokens, do_sample=params.do_sample,
            seed=params.seed if params.do_sample else None,
        )
        out: dict[str, Any] = {}
        with GENERATION_LOCK:
            streamer = _make_streamer(lm.tokenizer, self.heartbeat_s, self.on_tokens)
            gen_kwargs: dict[str, Any] = dict(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new, streamer=streamer,
                pad_token_id=lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else lm.tokenizer.eos_token_id,
            )
            cancel = threading.Event()
            gen_kwargs["stopping_criteria"] = _cancel_criteria(cancel)
            if params.do_sample:
                gen_kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            else:
                gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

            def work() -> None:
                try:
                    if params.do_sample and params.seed is not None:
                        torch.manual_seed(int(params.seed))
                    with torch.inference_mode():
                        out["ids"] = lm.model.generate(**gen_kwargs)
                except BaseException as exc:  # noqa: BLE001 - reported to the caller
                    _log.debug("reported to the caller: %s", exc, exc_info=True)
                    out["error"] = f"{type(exc).__name__}: {exc}"
                    streamer.end()  # unblock the consumer

            res.started_at = time.time()
            t0 = time.perf_counter()
            worker = threading.Thread(target=work, name="sprout-generate", daemon=True)
            worker.start()
            pieces: list[str] = []
            aborted = True
            try:
                last_text = t0
                while True:
                    try:
                        piece = next(streamer)
                    except StopIteration:
                        break
                    except queue.Empty:  # no text for heartbeat_s: say so, or give up on a stuck worker
                        now = time.perf_counter()
                        if now - last_text > self.chunk_timeout_s:
                            out.setdefault("error", f"TimeoutError: no new text for {self.chunk_timeout_s:.0f} s")
                            break
                        yield StreamChunk("", streamer.count, now - t0, n_prompt)
                        continue
                    if piece:
                        last_text = time.perf_counter()
                        pieces.append(piece)
                        yield StreamChunk(piece, streamer.count, last_text - t0, n_prompt)
                aborted = False
            finally:
                # If the consumer stopped early (closed the generator), stop the worker too and
                # wait for it, so the model is free before the lock is released.
                cancel.set()
                worker.join(timeout=self.chunk_timeout_s)
                res.total_s = time.perf_counter() - t0
                if streamer.first_token_t is not None:
                    res.ttft_s = streamer.first_token_t - t0
                self.result = self._finish(res, out, pieces, streamer, n_prompt, max_new, aborted)

    def _finish(self, res: GenerationResult, out: dict, pieces: list[str], streamer, n_prompt: int, max_new: int,
                aborted: bool) -> GenerationResult:
        lm = self.lm
        if "error" in out:
            res.error = out["error"]
            res.finish_reason = "error"
            res.new_tokens = streamer.count
            res.text = "".join(pieces).strip()  # what streamed before the failure
        elif "ids" not in out:  # aborted and the worker did not stop in time: what streamed so far
            res.finish_reason, res.partial = ABORTED, True
            res.new_tokens = streamer.count
            res.text = "".join(pieces).strip()
        else:
            new_ids = out["ids"][0, n_prompt:]
            res.new_tokens = int(new_ids.shape[0])
            res.text = lm.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
            if aborted:
                res.finish_reason, res.partial = ABORTED, True
            else:
                eos = lm.model.generation_config.eos_token_id
                eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) | {lm.tokenizer.eos_token_id}
                last = int(new_ids[-1]) if res.new_tokens else None
                res.finish_reason = "eos" if (last in eos_ids or res.new_tokens < max_new) else "length"
        if res.total_s > 0 and res.new_tokens:
            res.tokens_per_s = res.new_tokens / res.total_s
        return res


def stream_generate(lm: LoadedModel | Backend, prompt: str, directive: Directive, params: GenerationParams | None = None,
                    placement: Placement | None = None) -> AnswerStream:
    """A stream of the answer to ``prompt`` under ``directive`` from any backend (PromptError on bad input)."""
    if isinstance(lm, LoadedModel):
        return GenerationStream(lm, prompt, directive, params or GenerationParams(), placement)
    return lm.open_stream(prompt, directive, params or GenerationParams(), placement)


def generate(lm: LoadedModel | Backend, prompt: str, directive: Directive, params: GenerationParams | None = None,
             placement: Placement | None = None, on_tokens: Callable[[int], None] | None = None) -> GenerationResult:
    """Generate the whole answer (consumes a :func:`stream_generate` stream; ``on_tokens`` as in :class:`AnswerStream`)."""
    stream = stream_generate(lm, prompt, directive, params, placement)
    stream.on_tokens = on_tokens
    for _ in stream:
        pass
    assert stream.result is not None
    return stream.result
