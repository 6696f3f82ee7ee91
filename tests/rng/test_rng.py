import math
import os
import subprocess
import sys

import pytest
import torch

from noisevision.rng import Rng, hash_words, mix64, mix64_int, uniform24
from noisevision.rng.splitmix import mix64_tensor


def test_mix64_matches_python_reference():
    values = [0, 1, 2**40 + 7, -5, 2**63 - 1]
    got = mix64(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [mix64_int(v) for v in values]


def test_cpu_kernels_give_the_tensor_code_words():
    # On CPU, mix64, bits and uniform run as numba loops; every other device runs the tensor code.
    keys = torch.tensor([0, 1, -7, 2**62 + 3, -(2**63)], dtype=torch.int64)
    grid = (keys[:, None] * 3 + keys[None, :]).t()  # 2-D, not contiguous
    for salt in (0, 5, -(2**63), 2**63 - 1, mix64_int(11)):
        assert torch.equal(mix64(grid, salt), mix64_tensor(grid ^ salt))
    for n in (1, 2, 7, 64):
        words = Rng(keys).bits(n)
        assert torch.equal(words, hash_words(Rng(keys)._draw(), n))
        assert torch.equal(Rng(keys).uniform(n), uniform24(Rng(keys).bits((n + 1) // 2), n))
        for low, high in ((0, 256), (-5, 1_000_003), (3, 2**31 - 1)):
            words = Rng(keys).bits(n)  # randint keeps the top 31 bits, modulo the span
            expected = low + torch.div(words, 2**33, rounding_mode="floor").bitwise_and(2**31 - 1) % (
                high - low
            )
            assert torch.equal(Rng(keys).randint(low, high, n), expected)


def test_values_do_not_depend_on_batch():
    idx = torch.arange(10)
    a = Rng.for_indices("g", 3, idx)
    ua, na, ka = a.uniform(50), a.normal(7), a.randint(0, 9, 4)
    sub = torch.tensor([7, 2, 9])
    b = Rng.for_indices("g", 3, sub)
    ub, nb, kb = b.uniform(50), b.normal(7), b.randint(0, 9, 4)
    assert torch.equal(ua[sub], ub) and torch.equal(na[sub], nb) and torch.equal(ka[sub], kb)


def test_seed_name_and_index_give_independent_streams():
    idx = torch.arange(4)
    base = Rng.for_indices("g", 0, idx).uniform(1000)
    assert not torch.equal(base, Rng.for_indices("g", 1, idx).uniform(1000))
    assert not torch.equal(base, Rng.for_indices("h", 0, idx).uniform(1000))
    corr = torch.corrcoef(base)
    assert (corr - torch.eye(4)).abs().max() < 0.15


def test_distributions():
    r = Rng.for_indices("dist", 0, torch.arange(20))
    u = r.uniform(5000)
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    z = r.normal(5000)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    k = r.randint(3, 8, 5000)
    assert set(k.unique().tolist()) == {3, 4, 5, 6, 7}
    lap = r.laplace(5000)
    assert abs(float(lap.abs().mean()) - 1) < 0.03  # E|X| = scale
    assert math.isfinite(float(lap.abs().max()))


def test_child_streams_are_per_entry_and_deterministic():
    r = Rng.for_indices("c", 0, torch.arange(3))
    sub = torch.arange(4).repeat(3, 1)  # [3, 4] -> 12 keys
    k1 = r.child("regions", sub).keys
    k2 = Rng.for_indices("c", 0, torch.arange(3)).child("regions", sub).keys
    assert k1.shape == (12,) and torch.equal(k1, k2) and k1.unique().numel() == 12


def test_fused_gpu_kernels_give_the_tensor_code_words():
    """noisevision.rng.cuda's Triton kernels, run by Triton's interpreter on the CPU: the words, uniforms,
    integers and mixes of the tensor code, bit for bit (on a GPU, `pytest -m cuda` checks them
    against the CPU's numba kernels)."""
    pytest.importorskip("triton")
    script = """
import torch
from noisevision.rng import Rng, hash_words, mix64, mix64_int, uniform24
from noisevision.rng import cuda as rng_cuda
from noisevision.rng.splitmix import _srl
assert rng_cuda.available(torch.device("cpu"))
keys = Rng.for_indices("x", 3, torch.arange(5)).keys
salt = mix64_int(7 * 0x632BE59BD9B4E019)
state = mix64(keys ^ salt)
for n in (1, 2, 7, 300):
    assert torch.equal(rng_cuda.draw(keys, salt, n, rng_cuda.WORDS), hash_words(state, n))
    ref = uniform24(hash_words(state, (n + 1) // 2), n)
    assert torch.equal(rng_cuda.draw(keys, salt, n, rng_cuda.UNIFORM), ref)
    ref = -3 + (_srl(hash_words(state, n), 33) % 1000)
    assert torch.equal(rng_cuda.draw(keys, salt, n, rng_cuda.RANDINT, -3, 1000), ref)
x = torch.randint(-2**62, 2**62, (3, 4))
assert torch.equal(rng_cuda.mix64_fused(x), mix64(x))
assert rng_cuda.self_check(torch.device('cpu'))
print("same")
"""
    env = {**os.environ, "TRITON_INTERPRET": "1", "NOISEVISION_TRITON": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "same" in proc.stdout, proc.stderr[-2000:]
