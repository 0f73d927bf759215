"""``python -m sprout_core generate`` on the tiny model."""
import json
import subprocess
import sys

from sprout_core.cli import main

REQUIRED = {"level", "directive", "prompt_tokens", "new_tokens", "ttft_s", "total_s", "tokens_per_s", "text", "model", "device"}


def test_generate_json_has_one_object_per_level(tiny_llama2_dir, capsys):
    rc = main(["generate", "--model", str(tiny_llama2_dir), "--prompt", "hello world", "--levels", "L0,L2",
               "--max-new-tokens", "6", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["level"] for o in out] == ["L0", "L2"]
    for o in out:
        assert REQUIRED <= set(o)
        assert o["new_tokens"] == 6 and o["device"] == "cpu" and o["model"] == "tiny-llama-2-chat"
    assert out[0]["directive"] == "" and out[1]["directive"] == "Always answer very briefly"
    assert out[1]["prompt_tokens"] > out[0]["prompt_tokens"]


def test_generate_defaults_to_all_levels_and_prints_text(tiny_llama2_dir, capsys):
    rc = main(["generate", "--model", str(tiny_llama2_dir), "--prompt", "hello", "--max-new-tokens", "3"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "=== L0" in text and "=== L1" in text and "=== L2" in text and "new tokens" in text


def test_generate_bad_inputs_exit_2_with_a_message(tiny_llama2_dir, tmp_path, capsys):
    assert main(["generate", "--model", str(tiny_llama2_dir), "--prompt", "hi", "--levels", "L7", "--json"]) == 2
    assert "L7" in capsys.readouterr().err
    assert main(["generate", "--model", str(tiny_llama2_dir), "--prompt", "  ", "--json"]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "hi"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["generate", "--model", str(tiny_llama2_dir), "--prompt", "hi", "--max-new-tokens", "0"]) == 2


def test_module_entry_point_runs(tiny_llama2_dir):
    p = subprocess.run([sys.executable, "-m", "sprout_core", "generate", "--model", str(tiny_llama2_dir), "--prompt",
                        "hi", "--levels", "L1", "--max-new-tokens", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["level"] == "L1"
