"""search/precision.py: the precision follows the hardware, decided from what the CPU says it
has (given here as an input, whatever this machine has), and bf16 trains and evaluates under
autocast while the weights stay fp32."""

from __future__ import annotations

import torch

from models import MLPConfig
from search.precision import autocast, choose, cpu_flags
from search.train import TrainConfig, evaluate, fit

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def never(*_) -> bool:
    raise AssertionError("the probe ran although the flags answer")


def test_auto_is_bf16_only_on_a_cpu_with_native_bf16():
    assert choose("auto", CPU, {"avx512f", "avx512_bf16"}, never) == "bf16"
    assert choose("auto", CPU, {"amx_bf16", "amx_tile"}, never) == "bf16"  # Intel AMX
    assert choose("auto", CPU, {"avx2", "avx512f"}, never) == "fp32"  # bf16 emulated: slower
    assert choose("auto", CUDA, {"avx512_bf16"}, never) == "fp32"  # the GPU keeps TF32


def test_only_unknown_flags_ask_the_timed_probe_and_a_choice_given_is_kept():
    assert choose("auto", CPU, None, lambda: True) == "bf16"
    assert choose("auto", CPU, None, lambda: False) == "fp32"
    assert choose("fp32", CPU, {"avx512_bf16"}, never) == "fp32"
    assert choose("bf16", CPU, set(), never) == "bf16"


def test_the_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_tile\n")
    assert cpu_flags(info) == {"fpu", "sse", "avx512_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") is None


def test_bf16_trains_under_autocast_and_keeps_fp32_weights(small_splits):
    config = TrainConfig(optimizer="adam", lr=1e-3, epochs=2, batch_size=64, precision="bf16")
    model, result = fit(MLPConfig(hidden_dim=32), config, small_splits.train, small_splits.val)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result.last.val_accuracy > 0.6  # it learned
    loss, accuracy = evaluate(model, *small_splits.val, "bf16")
    assert abs(accuracy - evaluate(model, *small_splits.val)[1]) < 0.02
    with autocast("bf16", CPU):
        assert model(small_splits.val[0][:2]).dtype == torch.bfloat16
    with autocast("fp32", CPU):
        assert model(small_splits.val[0][:2]).dtype == torch.float32
