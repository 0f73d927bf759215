"""Offline quality evaluation: prompt sets, runs, judges (LLM, reference, human), aggregation, agreement.

Modules: :mod:`.prompts` (sets, readers, sampling), :mod:`.judges` (judges as configuration + pure
parsers), :mod:`.shares` (the one quality estimate: raw and
length-controlled win shares with 95 % intervals), :mod:`.aggregate` (raw win shares, agreement), :mod:`.db` (SQLite tables
runs/answers/judgments), :mod:`.runner` (resumable runs), :mod:`.reference` (the Sprout paper's
GPT-4 verdicts on Llama-2-13B), :mod:`.embeddings` (all-MiniLM-L6-v2, cached).
"""
