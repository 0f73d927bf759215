"""Judges: which of N answers (one per directive level) to the same prompt is best.

A judge is configuration plus a pure parser, as in alpaca_eval: a name, a kind (``llm``,
``reference``, ``human``), for LLM judges a prompt file in ``data/judges/`` and a backend.

* :func:`judge_reference` — exact match (final number for arithmetic, the letter for multiple
  choice, the reference text inside the answer for short facts) and, for free text, semantic
  similarity to the reference (all-MiniLM-L6-v2); best = correct first, then most similar; ties go to
  the shorter answer (identical answers: the higher level, i.e. the briefer directive).
* :func:`judge_llm` — best-of-N: the answers in a seeded shuffled order (stored), a strict reply
  format ``Output (k)`` parsed by :func:`parse_best_of`; an unparseable reply is stored invalid, never
  guessed. By default a second pass shows another order (each answer moved): a pair that disagrees
  counts as a tie in the quality estimate, and the flip rate is stored. An authentication or quota
  error of the judge's endpoint stops the run (:class:`JudgeStopError`) instead of filling it with
  invalid verdicts.
* human votes are stored by :func:`sprout_core.evaluate.db.record_human_vote`.

Every judge returns :class:`Verdict` records.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from sprout_core.errors import InputError, SproutError, UnknownNameError
from sprout_core.paths import project_data_dir
from sprout_core.settings import Settings

_log = logging.getLogger("sprout.evaluate.judges")

#: the embedded 135M model can run the LLM judge only mechanically
WEAK_JUDGE_NOTE = "too weak to trust: a 135M-parameter model cannot judge answer quality"


@dataclass
class Verdict:
    """One judge's decision on one prompt.

    ``winner``: the winning level (``L0``…) or ``None`` when invalid. ``order``: the levels in the
    order the judge saw them (position 1 first). ``raw``: the judge's reply (LLM) or a summary.
    ``pass_no``: 1, or 2 for the position-consistency pass. ``seconds``: wall time of judging, s.
    ``details``: per-level scores (reference judge: correct, similarity, length). ``energy_j``: energy of
    this pass's judging call in J (``None`` = n/a: not metered, e.g. a remote API) with ``energy_method``.
    """

    judge: str
    winner: str | None
    valid: bool
    order: list[str]
    raw: str = ""
    pass_no: int = 1
    seconds: float = 0.0
    reason: str = ""
    details: dict = field(default_factory=dict)
    energy_j: float | None = None
    energy_method: str = "n/a"

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- parsers (pure)

_OUTPUT_RE = re.compile(r"^\s*\**\s*output\s*\(\s*(\d+)\s*\)\s*\**\s*[.!]?\s*$", re.IGNORECASE)


def parse_best_of(reply: str, n: int) -> int | None:
    """1-based index from a strict ``Output (k)`` reply, or ``None`` (invalid).

    The first non-empty line must be exactly ``Output (k)`` (case-insensitive; bold markers and a
    final full stop tolerated) with 1 ≤ k ≤ n, and no other line may name a different output.
    """
    if not reply:
        return None
    lines = [ln for ln in reply.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    m = _OUTPUT_RE.match(lines[0])
    if not m:
        return None
    k = int(m.group(1))
    if not 1 <= k <= n:
        return None
    for ln in lines[1:]:
        for other in re.findall(r"output\s*\(\s*(\d+)\s*\)", ln, re.IGNORECASE):
            if int(other) != k:
                return None
    return k


_NUM_RE = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?")


def _to_number(s: str) -> float | None:
    s = s.replace("$", "").replace(",", "").strip()
    try:
        return float(s)
    except ValueError:
        return None


def final_number(text: str) -> float | None:
    """The answer's final number: after ``####`` when present, else the last number in the text."""
    if not text:
        return None
    if "####" in text:
        tail = text.rsplit("####", 1)[1]
        nums = _NUM_RE.findall(tail)
        if nums:
            return _to_number(nums[0])
    nums = _NUM_RE.findall(text)
    return _to_number(nums[-1]) if nums else None


_LETTER_PATTERNS = [
    re.compile(r"(?:answer|option|choice)\s*(?:is|:|would be|=)?\s*:?\s*\(?\**([A-E])\b\)?", re.IGNORECASE),
    re.compile(r"^\W*\(?([A-E])\)\s*:?", re.MULTILINE),
    re.compile(r"^\W*([A-E])\s*[:.)]", re.MULTILINE),
    re.compile(r"\(([A-E])\)"),
    re.compile(r"^\s*([A-E])\s*$", re.MULTILINE),
]


def choice_letter(text: str) -> str | None:
    """The multiple-choice letter an answer gives (``B`` from "The answer is (B)", "B) …", "B: …")."""
    if not text:
        return None
    for pat in _LETTER_PATTERNS:
        m = pat.search(text)
        if m:
            letter = m.group(1)
            # "answer is a …" lower-case article is not a choice
            if pat is _LETTER_PATTERNS[0] and letter.islower():
                continue
            return letter.upper()
    return None


def _norm(s: str) -> str:
    s = s.lower()
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    s = re.sub(r"[^a-z0-9 ]+", " ", s)
    return " ".join(s.split())


def reference_kind(reference: str) -> str:
    """``number`` (a bare number or a ``#### n`` solution), ``letter`` (A–E), ``short`` (≤ 6 words, may
    hold ``;``-separated aliases) or ``text``."""
    r = (reference or "").strip()
    if re.fullmatch(r"\(?[A-Ea-e]\)?\.?", r):
        return "letter"
    if "####" in r or _to_number(r) is not None:
        return "number"
    if all(len(a.split()) <= 6 for a in r.split(";") if a.strip()):
        return "short"
    return "text"


def is_correct(answer: str, reference: str, kind: str | None = None) -> bool | None:
    """Exact-match correctness of ``answer`` against ``reference``; ``None`` for free text (``text``).

    number: the answer's final number equals the reference's (within 1e-6); letter: same letter;
    short: a normalised alias of the reference (``;``-separated) occurs in the normalised answer.
    """
    kind = kind or reference_kind(reference)
    if kind == "number":
        ref = final_number(reference)
        got = final_number(answer)
        return ref is not None and got is not None and abs(ref - got) < 1e-6
    if kind == "letter":
        return choice_letter(answer) == reference.strip().strip("().").upper()
    if kind == "short":
        ans = f" {_norm(answer)} "
        aliases = [_norm(a) for a in reference.split(";") if _norm(a)]
        return any(f" {a} " in ans for a in aliases)
    return None


# ---------------------------------------------------------------- reference judge

def judge_reference(
    answers: Mapping[str, str],
    reference: str | None,
    similarity: Callable[[Sequence[str], str], Sequence[float]] | None = None,
    name: str = "reference",
) -> Verdict:
    """Best answer by the reference: correct first, then most similar, then shorter.

    ``answers``: level → text. ``similarity(texts, reference)`` → cosine per text; default
    all-MiniLM-L6-v2 (:mod:`sprout_core.embeddings`). Similarity is used for ``text`` and
    ``number`` references with a worked solution; bare numbers/letters are decided by correctness
    and length only (similarity to "B" means nothing). No reference → invalid.
    """
    t0 = time.perf_counter()
    levels = list(answers)
    if not reference or not str(reference).strip():
        return Verdict(name, None, False, levels, raw="no reference answer", reason="no reference", seconds=time.perf_counter() - t0)
    kind = reference_kind(reference)
    texts = [answers[lv] or "" for lv in levels]
    correct = [is_correct(t, reference, kind) for t in texts]
    use_sim = kind in ("text", "short") or (kind == "number" and len(reference.split()) > 3)
    if use_sim:
        if similarity is None:
            similarity = default_similarity
        sims = [float(s) for s in similarity(texts, reference)]
    else:
        sims = [0.0] * len(texts)
    lengths = [len(t.strip()) for t in texts]
    details = {
        lv: {"correct": c, "similarity": round(s, 4) if use_sim else None, "chars": n}
        for lv, c, s, n in zip(levels, correct, sims, lengths)
    }

    def key(i: int):
        # higher is better: correct, similarity (3 decimals: closer is a tie), shorter, higher level
        return (1 if correct[i] else 0, round(sims[i], 3), -lengths[i], i)

    best = max(range(len(levels)), key=key)
    winner = levels[best]
    summary = ", ".join(
        f"{lv}: {'correct' if c else ('wrong' if c is False else 'n/a')}" + (f" sim {s:.3f}" if use_sim else "") + f" {n} chars"
        for lv, c, s, n in zip(levels, correct, sims, lengths)
    )
    return Verdict(name, winner, True, levels, raw=f"[{kind}] {summary} → {winner}", reason=kind, details=details,
                   seconds=time.perf_counter() - t0)


def default_similarity(texts: Sequence[str], reference: str) -> list[float]:
    """Cosine similarity of each text to the reference with all-MiniLM-L6-v2 (cached embeddings)."""
    from sprout_core.embeddings import encode

    vecs = encode(list(texts) + [reference])
    return [float(v @ vecs[-1]) for v in vecs[:-1]]


# ---------------------------------------------------------------- LLM judge

@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt file: system text and user template (placeholders ``{instruction}``,
    ``{outputs}``, ``{n}``, ``{choices}``)."""

    name: str
    system: str
    user: str

    def messages(self, instruction: str, shown: Sequence[str]) -> list[dict[str, str]]:
        """Chat messages asking for the best of ``shown`` (answers in display order)."""
        n = len(shown)
        outputs = "\n\n".join(f"## Output ({k})\n{txt.strip() or '(empty answer)'}" for k, txt in enumerate(shown, start=1))
        choices = ", ".join(str(k) for k in range(1, n + 1))
        user = (self.user.replace("{instruction}", instruction.strip()).replace("{outputs}", outputs)
                .replace("{n}", str(n)).replace("{choices}", choices))
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": user}]


def judges_dir() -> Path:
    return project_data_dir() / "judges"


def load_judge_prompt(name: str = "best_of") -> JudgePrompt:
    """Read ``data/judges/<name>.md`` (HTML comments dropped; ``=== USER ===`` splits system/user)."""
    text = (judges_dir() / f"{name}.md").read_text(encoding="utf-8")
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL).strip()
    if "=== USER ===" in text:
        system, user = text.split("=== USER ===", 1)
    else:
        system, user = "", text
    return JudgePrompt(name, system.strip(), user.strip())


def shuffled_order(levels: Sequence[str], seed: int, key: str) -> list[str]:
    """A seeded shuffle of ``levels`` for one prompt (``key``): same seed and key → same order."""
    order = list(levels)
    random.Random(f"{seed}:{key}").shuffle(order)
    return order


def rotated(order: Sequence[str]) -> list[str]:
    """The second-pass order: rotated by one, so every answer sits at a different position."""
    order = list(order)
    return order[1:] + order[:1] if len(order) > 1 else order


ChatFn = Callable[[list[dict[str, str]]], str]


class JudgeStopError(SproutError):
    """The judge's endpoint refused us for good (authentication, quota): the run stops here, answers and
    verdicts stored so far are kept, and the message says what to fix."""


def judge_llm(
    instruction: str,
    answers: Mapping[str, str],
    chat: ChatFn,
    name: str,
    seed: int = 0,
    key: str = "",
    second_pass: bool = True,
    prompt: JudgePrompt | None = None,
) -> list[Verdict]:
    """Best-of-N verdicts from an LLM behind ``chat(messages) -> reply``.

    Pass 1 shows the answers in :func:`shuffled_order`; pass 2 (default; ``second_pass=False`` skips it)
    in :func:`rotated` order. A reply that :func:`parse_best_of` cannot read, or a transient backend
    error, gives an invalid verdict with the raw reply or error stored; a :class:`JudgeStopError`
    (authentication, quota) propagates and nothing of this prompt is stored. When ``chat`` has an
    ``energy_log`` (:class:`MeteredChat`), each pass's energy is kept on its verdict.
    """
    prompt = prompt or load_judge_prompt()
    levels = list(answers)
    orders = [shuffled_order(levels, seed, key or instruction)]
    if second_pass and len(levels) > 1:
        orders.append(rotated(orders[0]))
    out: list[Verdict] = []
    for pass_no, order in enumerate(orders, start=1):
        msgs = prompt.messages(instruction, [answers[lv] for lv in order])
        t0 = time.perf_counter()
        try:
            reply = chat(msgs)
            err = ""
        except JudgeStopError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend failure is an invalid verdict, not a crash
            _log.warning("a backend failure is an invalid verdict, not a crash: %s", exc)
            reply, err = "", f"{type(exc).__name__}: {exc}"
        dt = time.perf_counter() - t0
        energy = getattr(chat, "last_energy", None)
        e_j, e_m = (energy if energy is not None else (None, "n/a"))
        k = parse_best_of(reply, len(order))
        if k is None:
            out.append(Verdict(name, None, False, order, raw=reply or err, pass_no=pass_no, seconds=dt,
                               reason=err or "unparseable reply", energy_j=e_j, energy_method=e_m))
        else:
            out.append(Verdict(name, order[k - 1], True, order, raw=reply, pass_no=pass_no, seconds=dt,
                               energy_j=e_j, energy_method=e_m))
    return out


class MeteredChat:
    """A judge chat function whose every call is metered: ``last_energy`` = ``(J or None, method)`` of
    the latest call (an energy window of ``meter``; n/a when the meter cannot measure)."""

    def __init__(self, chat: ChatFn, meter):
        self.chat = chat
        self.meter = meter
        self.last_energy: tuple[float | None, str] | None = None

    def __getattr__(self, name: str):  # the wrapped chat's attributes (e.g. ``lm``)
        return getattr(self.__dict__["chat"], name)

    def __call__(self, messages: list[dict[str, str]]) -> str:
        self.last_energy = None
        with self.meter.window(live=False) as w:
            reply = self.chat(messages)
        r = w.reading
        self.last_energy = (r.energy_j, r.method) if r is not None else (None, "n/a")
        return reply


def flip_rate(pairs: Sequence[tuple[str | None, str | None]]) -> tuple[int, int, float | None]:
    """(flips, comparable, rate) over (pass-1 winner, pass-2 winner) pairs where both are valid: a flip is
    a pair whose winners differ (the order shown changed the verdict)."""
    comparable = [(a, b) for a, b in pairs if a is not None and b is not None]
    flips = sum(1 for a, b in comparable if a != b)
    return flips, len(comparable), (flips / len(comparable) if comparable else None)


def position_consistency(pairs: Sequence[tuple[Verdict, Verdict]]) -> tuple[int, int, float | None]:
    """(consistent, comparable, share) over (pass 1, pass 2) verdict pairs where both are valid."""
    comparable = [(a, b) for a, b in pairs if a.valid and b.valid]
    same = sum(1 for a, b in comparable if a.winner == b.winner)
    return same, len(comparable), (same / len(comparable) if comparable else None)


# ---------------------------------------------------------------- backends

class OpenAIChat:
    """An OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, a hosted model).

    ``base_url`` like ``http://127.0.0.1:8000/v1``; the key is read from the environment variable
    ``api_key_env`` (none needed for local servers). Greedy (temperature 0), ``max_tokens`` 16.
    Retries on connection errors, timeouts, 429 and 5xx with exponential back-off.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "SPROUT_JUDGE_API_KEY",
                 timeout_s: float = 60.0, retries: int = 3, backoff_s: float = 1.0, max_tokens: int = 16):
        if not base_url:
            raise InputError("The API judge needs a base URL, e.g. http://127.0.0.1:8000/v1")
        self.url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/chat/completions") else "/chat/completions")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens

    def __call__(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0,
                           "max_tokens": self.max_tokens}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env or "", "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                return data["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as exc:
                last = exc
                body_text = _error_body(exc)
                if exc.code in (401, 403):
                    raise JudgeStopError(
                        f"The judge endpoint {self.url} refused the request (HTTP {exc.code}: {body_text or 'unauthorised'}). "
                        f"Check the key in ${self.api_key_env} (and that it may use model {self.model!r}), then run the "
                        "same command again: answers and verdicts stored so far are kept and the run resumes.") from None
                if exc.code == 402 or (exc.code == 429 and _is_quota(body_text)):
                    raise JudgeStopError(
                        f"The judge endpoint {self.url} says the quota or credit is used up (HTTP {exc.code}: "
                        f"{body_text}). Add credit or wait for the quota to reset, then run the same command again: "
                        "answers and verdicts stored so far are kept and the run resumes.") from None
                if exc.code != 429 and exc.code < 500:
                    raise RuntimeError(f"judge endpoint answered HTTP {exc.code}: {body_text}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = exc
            except (KeyError, IndexError, json.JSONDecodeError) as exc:
                raise RuntimeError(f"judge endpoint sent an unexpected body: {exc}") from exc
            if attempt < self.retries:
                time.sleep(self.backoff_s * (2 ** attempt))
        raise RuntimeError(f"judge endpoint {self.url} failed after {self.retries + 1} tries: {last}")


def _error_body(exc) -> str:
    """The error message of an HTTP error's JSON body (``error.message``), else its first 200 bytes."""
    try:
        raw = exc.read()[:2000]
    except Exception as exc:  # noqa: BLE001 - a body that cannot be read: the status says enough
        _log.warning("a body that cannot be read: the status says enough: %s", exc)
        return ""
    try:
        doc = json.loads(raw.decode("utf-8", "replace"))
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            return " ".join(str(err.get(k)) for k in ("message", "type", "code") if err.get(k))[:300]
        if isinstance(err, str):
            return err[:300]
    except (ValueError, AttributeError):
        pass
    return raw[:200].decode("utf-8", "replace")


def _is_quota(text: str) -> bool:
    t = (text or "").lower()
    return any(w in t for w in ("insufficient_quota", "quota", "billing", "credit"))


class LocalChat:
    """A local Hugging Face model (a :class:`sprout_core.models.LoadedModel`) as judge: greedy,
    ``max_new_tokens`` 12, under the generation lock."""

    def __init__(self, lm, max_new_tokens: int = 12):
        self.lm = lm
        self.max_new_tokens = max_new_tokens

    def __call__(self, messages: list[dict[str, str]]) -> str:
        import torch

        from sprout_core.generation import GENERATION_LOCK

        tok = self.lm.tokenizer
        enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        ctx = getattr(self.lm.info, "context_len", 2048)
        ids = enc["input_ids"]
        if ids.shape[1] + self.max_new_tokens > ctx:
            raise RuntimeError(f"judge prompt is {ids.shape[1]} tokens; the judge model reads at most {ctx}")
        device = getattr(self.lm.model, "device", "cpu")
        with GENERATION_LOCK, torch.no_grad():
            out = self.lm.model.generate(
                input_ids=ids.to(device), attention_mask=enc["attention_mask"].to(device),
                max_new_tokens=self.max_new_tokens, do_sample=False,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


# ---------------------------------------------------------------- judge registry (configuration)

@dataclass(frozen=True)
class JudgeSpec:
    """A judge as configuration: ``kind`` ``reference`` | ``llm`` | ``human``; for ``llm`` the backend
    (``local`` model spec, or ``api`` with base URL/model/key env) and the prompt file."""

    name: str
    kind: str
    backend: str = ""
    model: str = ""
    base_url: str = ""
    api_key_env: str = "SPROUT_JUDGE_API_KEY"
    prompt_file: str = "best_of"
    second_pass: bool = True
    note: str = ""


def parse_judge(name: str, second_pass: bool = True) -> JudgeSpec:
    """A judge from its command-line name.

    ``reference``; ``human``; ``llm`` or ``llm:embedded`` (the embedded 135M model — mechanical only);
    ``llm:/path/to/hf-folder`` (a local model); ``api`` or ``api:MODEL`` (OpenAI-compatible endpoint from
    ``SPROUT_JUDGE_BASE_URL`` / ``SPROUT_JUDGE_MODEL`` / key in ``SPROUT_JUDGE_API_KEY``).
    ``second_pass``: LLM and API judges see each comparison in two orders (default; False = one pass).
    """
    n = (name or "").strip()
    low = n.lower()
    if low in ("reference", "ref"):
        return JudgeSpec("reference", "reference")
    if low == "human":
        return JudgeSpec("human", "human")
    if low in ("llm", "llm:embedded"):
        return JudgeSpec("llm:embedded", "llm", backend="local", model="embedded", second_pass=second_pass,
                         note=WEAK_JUDGE_NOTE)
    if low.startswith("llm:"):
        model = n[4:]
        if not model.strip():
            raise InputError("--judge llm: needs a model folder after the colon (llm:/path/to/model)")
        return JudgeSpec(f"llm:{Path(model).name or model}", "llm", backend="local", model=model, second_pass=second_pass)
    if low == "api" or low.startswith("api:"):
        model = n[4:] if low.startswith("api:") else Settings.from_env().judge_model
        base = Settings.from_env().judge_base_url
        if not model:
            raise InputError("The API judge needs a model: --judge api:MODEL or SPROUT_JUDGE_MODEL")
        if not base:
            raise InputError("The API judge needs SPROUT_JUDGE_BASE_URL (e.g. http://127.0.0.1:8000/v1)")
        return JudgeSpec(f"api:{model}", "llm", backend="api", model=model, base_url=base, second_pass=second_pass)
    raise UnknownNameError(f"Unknown judge {name!r}: use reference, llm, llm:/path/to/model, api:MODEL, human or none")
