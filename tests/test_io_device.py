"""interp.io (atomic writes, locks, checksums) and interp.device (device/dtype resolution)."""

import os

import pytest
import torch

from interp.device import resolve_device, resolve_dtype
from interp.errors import InterpError
from interp.io import (
    RunLock,
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    refuse_package_path,
    sha256_file,
    verify_checksum,
)


def test_auto_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv("INTERP_DEVICE", raising=False)
    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")


def test_cuda_without_cuda_is_one_line(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    with pytest.raises(InterpError, match=r"^--device cuda: CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setenv("INTERP_DEVICE", "cuda:1")
    with pytest.raises(InterpError, match="CUDA is not available"):
        resolve_device()
    with pytest.raises(InterpError, match="expected one of"):
        resolve_device("tpu")


def test_dtype_names_and_refusals(monkeypatch):
    monkeypatch.delenv("INTERP_DTYPE", raising=False)
    assert resolve_dtype(None) is torch.float32
    assert resolve_dtype("bf16") is torch.bfloat16
    with pytest.raises(InterpError, match="expected one of float32, bfloat16, float16"):
        resolve_dtype("int8")
    with pytest.raises(InterpError, match="float16 is not supported on the CPU"):
        resolve_dtype("float16", torch.device("cpu"))


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("old")
    atomic_write_json(p, {"x": 1})
    assert p.read_text() == '{\n  "x": 1\n}\n'
    assert sorted(os.listdir(tmp_path)) == ["a.json"]


def test_atomic_write_refuses_nan_and_keeps_old(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_text(p, "old")
    with pytest.raises(ValueError):
        atomic_write_json(p, {"x": float("nan")})
    assert p.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.json"]


def test_atomic_dir_failure_leaves_target_untouched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "cfg.json").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True, marker="cfg.json") as tmp:
            (tmp / "cfg.json").write_text("2")
            raise RuntimeError("boom")
    assert (out / "cfg.json").read_text() == "1"
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_atomic_dir_replaces_own_kind_only_with_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "cfg.json").write_text("1")
    with pytest.raises(InterpError, match="pass --overwrite"):
        with atomic_dir(out, marker="cfg.json"):
            pass
    with atomic_dir(out, overwrite=True, marker="cfg.json") as tmp:
        (tmp / "cfg.json").write_text("2")
    assert (out / "cfg.json").read_text() == "2"
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_foreign_directory_and_file_are_never_replaced(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "me.jpg").write_bytes(b"\xff")
    with pytest.raises(InterpError, match=r"is not an interp output of this kind \(no cfg.json"):
        check_output_dir(d, marker="cfg.json", overwrite=True)
    f = tmp_path / "notes.txt"
    f.write_text("keep")
    with pytest.raises(InterpError, match="is a file"):
        check_output_dir(f, marker="cfg.json", overwrite=True)
    assert (d / "me.jpg").read_bytes() == b"\xff" and f.read_text() == "keep"


def test_package_dir_is_refused():
    import interp

    with pytest.raises(InterpError, match="refusing to write into the installed package"):
        refuse_package_path(os.path.join(os.path.dirname(interp.__file__), "circuits", "x.json"))


def test_lock_names_holder_and_is_released(tmp_path):
    with RunLock(tmp_path, "collect run"):
        with pytest.raises(InterpError, match=rf"in use by pid {os.getpid()}"):
            RunLock(tmp_path, "collect run").acquire()
    assert not (tmp_path / ".lock").exists()
    RunLock(tmp_path).acquire().release()


def test_stale_lock_of_dead_pid_is_taken_over(tmp_path):
    import json
    import socket

    (tmp_path / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345}))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()


def test_checksum_detects_truncation(tmp_path):
    p = tmp_path / "shard.bin"
    p.write_bytes(b"abcdef")
    h = sha256_file(p)
    verify_checksum(p, h)
    p.write_bytes(b"abc")
    with pytest.raises(InterpError, match="corrupt or truncated"):
        verify_checksum(p, h, "shard")


def test_stale_siblings_of_dead_processes_are_tidied(tmp_path):
    from interp.io import clean_stale_siblings, remove_stale_temp_files

    out = tmp_path / "run"
    dead = 2**22 + 12345  # above pid_max defaults: no such process
    (tmp_path / f".run.tmp-{dead}-1").mkdir()
    (tmp_path / f".run.old-{dead}-2").mkdir()
    (tmp_path / f".run.old-{dead}-2" / "manifest.json").write_text("{}")
    live = tmp_path / f".run.tmp-{os.getpid()}-3"
    live.mkdir()
    clean_stale_siblings(out)
    # the kill fell between the two renames of replace_dir: the old run comes back
    assert (out / "manifest.json").read_text() == "{}"
    assert not (tmp_path / f".run.tmp-{dead}-1").exists() and live.exists()
    (out / ".shard_00001.safetensors.abc.tmp").write_bytes(b"half")
    (out / "keep.tmp.txt").write_text("x")
    remove_stale_temp_files(out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.tmp.txt", "manifest.json"]


def test_processing_specs_and_mismatch_lines():
    from interp.models import PROCESSING_FLAGS, parse_processing

    assert parse_processing("none") == dict.fromkeys(PROCESSING_FLAGS, False)
    assert parse_processing("tl-default") == dict.fromkeys(PROCESSING_FLAGS, True)
    assert parse_processing("fold_ln, center_unembed") == {"fold_ln": True, "center_writing_weights": False,
                                                          "center_unembed": True, "fold_value_biases": False}
    for bad in ("fold", "fold_ln,nope", ","):
        with pytest.raises(InterpError, match="expected none, tl-default"):
            parse_processing(bad)


def test_shipped_registry_names_the_build_command(monkeypatch, tmp_path, model):
    from interp import models as M

    monkeypatch.setitem(M.SHIPPED, "embedded-attn", M.ShippedModel("embedded-attn", "no_such_dir_here",
                                                                  "interp build-default --attn-only"))
    with pytest.raises(M.ModelLoadError, match=r"shipped model 'embedded-attn' is missing; build it with `interp build-default --attn-only`"):
        M.load_model("embedded-attn")
    info = M.loading_info(M.load_model("embedded", processing="center_writing_weights"))
    assert info["family"] == "interp" and info["processing"]["center_writing_weights"] and not info["processing"]["fold_ln"]
    line = M.processing_mismatch(model, {})  # SAELens default: every flag on (from_pretrained's defaults)
    assert line.startswith("SAE expects fold_ln=True (model has False)") and line.endswith("--processing tl-default")
    assert M.processing_mismatch(model, dict.fromkeys(M.PROCESSING_FLAGS, False)) is None


def test_json_safe_writes_undefined_metrics_as_null(tmp_path):
    import json

    from interp.io import json_safe

    p = atomic_write_json(tmp_path / "r.json", json_safe({"acc": float("nan"), "rows": [1.5, float("inf")], "n": 3}))
    assert json.loads(p.read_text()) == {"acc": None, "rows": [1.5, None], "n": 3}
