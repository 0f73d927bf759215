"""The Home page's claims, word for word the README's (issue 19 item 6; ``tests/test_home_readme.py`` compares them).

No streamlit here. Every sentence a visitor reads on Home about what Sprout is, which paper it reimplements
and how fast llama.cpp is, is one of these strings, and the README carries each of them verbatim (Markdown
emphasis aside), so the two cannot drift apart.
"""
from __future__ import annotations

#: the paper, exactly as it is titled in its EMNLP 2024 version
PAPER_TITLE = "Sprout: Green Generative AI with Carbon-Efficient LLM Inference"
PAPER_CITATION = f"Li, Jiang, Gadepally, Tiwari: *{PAPER_TITLE}*, EMNLP 2024; arXiv 2403.12900"

TAGLINE = "See, measure and cut the carbon cost of running a large language model."

INTRO = ("Sprout attaches **generation directives** (\"Always answer briefly\") to prompts so a language model "
         "answers with fewer tokens, measures what every answer costs in energy (J) and carbon (g CO₂e), and "
         "decides hour by hour — from the grid's carbon intensity and a quality constraint learned by an "
         "offline judge — which share of requests gets which directive. It reimplements and extends the "
         f"research system of the same name ({PAPER_CITATION}).")

#: page → what you do there (Home's list and the README's table)
PAGES = {
    "Home": "What Sprout does; the loaded model, device, dtype, threads, load time; pick a model or a backend "
            "(in process, llama.cpp, a serving engine).",
    "Lesson": "A guided path for a class or a talk: one prompt under three directives → the same answer on other "
              "grids and hours → the optimizer's choice as the grid gets dirtier → what a month of it saves; one "
              "chart (PNG for slides) and one sentence per step.",
    "Playground": "Send a prompt under each directive level, watch the answers stream with live energy and carbon "
                  "(status line, queue position, Stop; a cut run is kept, marked aborted).",
    "Optimizer": "Slide carbon intensity, a quality floor and the confidence of the promise, see the directive mix "
                 "Sprout serves and the quality it keeps.",
    "Evaluations": "Browse offline judge results (the project's own and the Sprout paper's GPT-4 verdicts).",
    "What-if": "Replay real grid traces and compare Sprout with its baselines: saving, quality, how often the "
               "promise held; or replay the paper's own setting.",
    "History": "Every request Sprout ran (complete or aborted), with filters and a CSV download.",
}

#: the measured llama.cpp speed-up (docs/serving.md, "Benchmark: transformers vs llama.cpp"); Home adds the full stop
LLAMA_CPP_CLAIM = ("llama.cpp runs the embedded model's GGUF at 5.8× the tokens/s of transformers on the same CPU "
                   "(median of 4 interleaved rounds on 2 shared cores, `benchmarks/bench_serving.py`; "
                   "docs/serving.md)")  # no full stop: the README's sentence goes on


def claims() -> list[str]:
    """Every claim Home shows that the README must carry word for word."""
    return [PAPER_TITLE, INTRO, LLAMA_CPP_CLAIM, *PAGES.values()]
