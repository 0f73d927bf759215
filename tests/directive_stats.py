"""The directive effect as a statistic over a set of prompts, not one greedy continuation.

One greedy answer differs between machines (CPU kernels, llama.cpp build, load-dependent thread splits),
so a test that asserts "L2 is shorter than L0" on one prompt passes on one machine and fails on another.
The tests instead answer :data:`LONG_ANSWER_IDS` (starter prompts whose undirected answers run long: advice,
explanations, writing) at L0 and L2 with sampling fixed (greedy, seed 0) and assert the **median** L2/L0
token ratio is below a bound with a wide margin: measured medians are ~0.2–0.3 for both backends
(docs/directives.md), the bound is 0.6, and with no directive effect the median would be ~1.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from sprout_core.directives import DirectiveSet
from sprout_core.evaluate.prompts import load_starter
from sprout_core.generation import GenerationParams, GenerationResult, generate

#: starter prompts (data/prompts/starter.jsonl) whose L0 answers are long on the embedded model
LONG_ANSWER_IDS = ("advice-01", "advice-02", "advice-04", "advice-07", "coding-02", "coding-07", "writing-04",
                   "writing-07")
#: the median L2/L0 new-token ratio must be below this (measured ~0.2–0.3; no effect would give ~1)
MEDIAN_RATIO_BOUND = 0.6
#: greedy, seed fixed: the backend's sampling is not left to its defaults
GREEDY = dict(do_sample=False, seed=0)


def long_answer_prompts(n: int | None = None) -> list[str]:
    by_id = {it.id: it.prompt for it in load_starter().items}
    ids = LONG_ANSWER_IDS if n is None else LONG_ANSWER_IDS[:n]
    return [by_id[i] for i in ids]


@dataclass
class LevelRun:
    """Answers per level (the order of the prompts) and the per-prompt L2/L0 token ratios."""

    results: dict[str, list[GenerationResult]]

    def ratios(self, level: str = "L2", base: str = "L0") -> list[float]:
        return [r.new_tokens / max(1, b.new_tokens) for r, b in zip(self.results[level], self.results[base])]

    def median_ratio(self, level: str = "L2", base: str = "L0") -> float:
        return statistics.median(self.ratios(level, base))


def run_levels(lm, dset: DirectiveSet, prompts: list[str], max_new_tokens: int, levels=("L0", "L2"),
               stream=None) -> LevelRun:
    """Answer each prompt at each level, greedy (``stream(lm, prompt, directive, params)`` → result, if given)."""
    params = GenerationParams(max_new_tokens=max_new_tokens, **GREEDY)
    out: dict[str, list[GenerationResult]] = {lv: [] for lv in levels}
    for p in prompts:
        for lv in levels:
            d = dset.get(lv)
            out[lv].append(stream(lm, p, d, params) if stream else generate(lm, p, d, params))
    return LevelRun(out)
