"""Integration: the real embedded SmolLM2-135M-Instruct (converted from GGUF once, then cached)."""
from sprout_core.directives import load_directive_set
from sprout_core.generation import GenerationParams, generate
from sprout_core.models import load_embedded

PROMPT = "What causes the seasons on Earth?"


def test_three_levels_answer_and_l2_is_shorter_than_l0():
    lm = load_embedded()
    assert lm.info.kind == "embedded" and lm.info.placement == "user" and lm.info.threads >= 1
    dset = load_directive_set(lm.info.directive_set)
    params = GenerationParams(max_new_tokens=200)
    res = {d.level: generate(lm, PROMPT, d, params) for d in dset.levels}
    assert set(res) == {"L0", "L1", "L2"}
    for r in res.values():
        assert r.error is None and r.text.strip() and r.new_tokens > 0
    assert res["L2"].new_tokens < res["L0"].new_tokens
    again = load_embedded()  # from the safetensors cache now
    assert not again.info.converted
