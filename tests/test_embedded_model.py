"""Integration: the real embedded SmolLM2-135M-Instruct through transformers (converted from GGUF once, then
cached). The directive effect is a statistic over 4 long-answer prompts, greedy (tests/directive_stats.py)."""
from sprout_core.directives import load_directive_set
from sprout_core.models import load_embedded
from tests.directive_stats import MEDIAN_RATIO_BOUND, long_answer_prompts, run_levels


def test_three_levels_answer_and_l2_is_shorter_than_l0(embedded_lm):
    lm = embedded_lm
    assert lm.info.kind == "embedded" and lm.info.placement == "user" and lm.info.threads >= 1
    dset = load_directive_set(lm.info.directive_set)
    prompts = long_answer_prompts(4)
    run = run_levels(lm, dset, prompts[:1], 24, levels=("L0", "L1", "L2"))  # every level answers
    for results in run.results.values():
        assert all(r.error is None and r.text.strip() and r.new_tokens > 0 for r in results)
    # measured: median L2/L0 0.42 at 80 new tokens (L0 runs to the cap); no directive effect would give ~1
    run = run_levels(lm, dset, prompts, 80)
    assert run.median_ratio("L2") < MEDIAN_RATIO_BOUND, run.ratios("L2")
    again = load_embedded()  # from the safetensors cache now
    assert not again.info.converted
