"""What the chat-message backends (a server, llama.cpp in process) share: the checked prompt, the messages
with the directive placed, and the start of the answer record."""
from __future__ import annotations

from typing import Any, Callable

from sprout_core.directives import Directive, Placement, build_messages
from sprout_core.generation import GenerationParams, GenerationResult, check_prompt


class ChatStream:
    """Base of a stream that sends chat messages: validates the prompt at once (``PromptError``), places the
    directive (``placement``, default the backend's), and offers :meth:`new_result`."""

    backend_name = "chat"

    def __init__(self, lm: Any, prompt: str, directive: Directive, params: GenerationParams,
                 placement: Placement | None = None):
        check_prompt(prompt)
        self.lm = lm
        self.prompt = prompt
        self.directive = directive
        self.params = params
        self.placement = placement or lm.info.placement
        self.messages = build_messages(prompt, directive, self.placement)  # type: ignore[arg-type]
        self.result: GenerationResult | None = None
        self.on_tokens: Callable[[int], None] | None = None

    def new_result(self, max_new_tokens: int, prompt_tokens: int | None, device: str) -> GenerationResult:
        """The answer record before generation: who answers, under which directive and settings."""
        p = self.params
        return GenerationResult(
            level=self.directive.level, directive=self.directive.text, prompt=self.prompt, prompt_tokens=prompt_tokens,
            model=self.lm.info.name, device=device, placement=self.placement, max_new_tokens=max_new_tokens,
            max_new_tokens_capped=max_new_tokens < p.max_new_tokens, do_sample=p.do_sample,
            seed=p.seed if p.do_sample else None, backend=self.backend_name,
        )


def llama_cpp_sampling(params: GenerationParams) -> dict[str, Any]:
    """llama.cpp's sampling fields set so it decodes as the transformers path does for the same ``params``.

    llama.cpp's own defaults differ from transformers': its server applies a repeat penalty of 1.1 to every
    request that does not name one (it changes even a greedy answer: penalties run before the argmax), and
    both its server and ``Llama.create_completion`` add min-p 0.05 and top-k 40. transformers (Sprout's
    :class:`~sprout_core.generation.GenerationStream`) uses none of them. Greedy: temperature 0 (argmax) with
    every penalty off; sampling: temperature and top-p as given, top-k and min-p off, the seed."""
    fields: dict[str, Any] = dict(repeat_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, min_p=0.0,
                                  typical_p=1.0)
    if params.do_sample:
        fields.update(temperature=float(params.temperature), top_p=float(params.top_p), top_k=0)
        if params.seed is not None:
            fields["seed"] = int(params.seed)
    else:
        fields.update(temperature=0.0, top_p=1.0, top_k=1, seed=0)
    return fields
