"""Directive sets, placement and chat messages."""
import pytest

from sprout_core.directives import (
    Directive,
    available_directive_sets,
    build_messages,
    config_for_model,
    load_directive_set,
)


def test_paper_levels_are_the_papers_texts():
    d = load_directive_set("paper")
    assert d.names == ["L0", "L1", "L2"]
    assert d.get("L0").text == ""
    assert d.get("L1").text == "Always answer briefly"
    assert d.get("L2").text == "Always answer very briefly"


def test_every_shipped_set_starts_with_an_empty_L0():
    for name in available_directive_sets():
        s = load_directive_set(name)
        assert s.levels[0].level == "L0" and s.levels[0].is_empty
        assert len(set(s.names)) == len(s.names)


def test_system_placement_puts_the_directive_in_a_system_message():
    msgs = build_messages("Why?", Directive("L1", "Always answer briefly"), "system")
    assert msgs == [{"role": "system", "content": "Always answer briefly"}, {"role": "user", "content": "Why?"}]


def test_l0_adds_no_system_message():
    assert build_messages("Why?", Directive("L0", ""), "system") == [{"role": "user", "content": "Why?"}]
    assert build_messages("Why?", Directive("L0", ""), "user") == [{"role": "user", "content": "Why?"}]


def test_user_placement_appends_to_the_user_turn():
    msgs = build_messages("Why is the sky blue?  ", Directive("L1", "Answer briefly."), "user")
    assert msgs == [{"role": "user", "content": "Why is the sky blue? Answer briefly."}]


def test_unknown_placement_is_rejected():
    with pytest.raises(ValueError):
        build_messages("x", Directive("L1", "y"), "assistant")


def test_custom_levels_are_validated_and_ordered():
    base = load_directive_set("paper")
    s = base.with_level("L3", "Answer in ten words.", "Ten words")
    assert s.names == ["L0", "L1", "L2", "L3"] and s.get("L3").custom
    with pytest.raises(ValueError, match="L3"):
        base.with_level("short", "x")
    with pytest.raises(ValueError, match="text"):
        base.with_level("L4", "   ")
    with pytest.raises(KeyError, match="L9"):
        base.get("L9")


def test_model_placement_config():
    assert config_for_model("/models/Llama-2-13b-chat-hf").placement == "system"
    assert config_for_model("/models/Llama-2-13b-chat-hf").directive_set == "paper"
    smol = config_for_model("SmolLM2-135M-Instruct")
    assert (smol.placement, smol.directive_set) == ("user", "smollm2")
    assert config_for_model("/models/some-other-chat").placement == "system"


def test_llama2_chat_template_renders_the_papers_format(tiny_lm):
    tok = tiny_lm.tokenizer
    l1 = tok.apply_chat_template(build_messages("What is 2+2?", Directive("L1", "Always answer briefly"), "system"),
                                 tokenize=False, add_generation_prompt=True)
    assert l1 == "<s>[INST] <<SYS>>\nAlways answer briefly\n<</SYS>>\n\nWhat is 2+2? [/INST]"
    l0 = tok.apply_chat_template(build_messages("What is 2+2?", Directive("L0", ""), "system"),
                                 tokenize=False, add_generation_prompt=True)
    assert l0 == "<s>[INST] What is 2+2? [/INST]"
    assert "<<SYS>>" not in l0


def test_chatml_template_places_system_and_user_directives(tiny_chatml_dir):
    from sprout_core.models import load_local

    lm = load_local(tiny_chatml_dir, device="cpu")
    tok = lm.tokenizer
    sys_txt = tok.apply_chat_template(build_messages("Hi", Directive("L2", "Always answer very briefly"), "system"),
                                      tokenize=False, add_generation_prompt=True)
    assert sys_txt.startswith("<|im_start|>system\nAlways answer very briefly<|im_end|>\n<|im_start|>user\nHi<|im_end|>")
    assert sys_txt.endswith("<|im_start|>assistant\n")
    user_txt = tok.apply_chat_template(build_messages("Hi", Directive("L1", "Answer briefly."), "user"),
                                       tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>system" not in user_txt
    assert "<|im_start|>user\nHi Answer briefly.<|im_end|>" in user_txt
