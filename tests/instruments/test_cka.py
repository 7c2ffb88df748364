"""linear_cka: invariances, identity, agreement of two algorithms; collect_activations hooks."""

import pytest
import torch

from lmech.instruments.cka import collect_activations, linear_cka


def _data(seed=0, n=50, d1=8, d2=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d1, generator=g, dtype=torch.float64)
    y = x[:, :d2] @ torch.randn(d2, d2, generator=g, dtype=torch.float64) + 0.5 * torch.randn(
        n, d2, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d1, d1, generator=g, dtype=torch.float64))
    return x, y, q


@pytest.mark.parametrize("debiased", [False, True])
def test_identity_and_invariances(debiased):
    x, y, q = _data()
    base = linear_cka(x, y, debiased=debiased).value
    assert abs(linear_cka(x, x, debiased=debiased).value - 1.0) < 1e-12  # exact identity, float64
    assert abs(linear_cka(x @ q, y, debiased=debiased).value - base) < 1e-10  # orthogonal invariance
    assert abs(linear_cka(3.7 * x, y, debiased=debiased).value - base) < 1e-10  # isotropic scaling
    assert abs(linear_cka(x + 5.0, y, debiased=debiased).value - base) < 1e-10  # translation (centering)
    aniso = x * torch.linspace(0.1, 3.0, x.shape[1], dtype=torch.float64)
    assert abs(linear_cka(aniso, y, debiased=debiased).value - base) > 1e-3  # negative control


def test_biased_matches_gram_formula():
    x, y, _ = _data(seed=1)
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    ref = (k * l).sum() / torch.sqrt((k * k).sum() * (l * l).sum())
    assert abs(linear_cka(x, y).value - ref.item()) < 1e-12  # second algorithm, float64


def test_debiased_removes_high_dimensional_bias():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 400, generator=g, dtype=torch.float64)
    y = torch.randn(40, 400, generator=g, dtype=torch.float64)
    # independent representations with D >> N: biased CKA is inflated (~0.9), debiased near 0
    assert linear_cka(x, y).value > 0.5
    assert abs(linear_cka(x, y, debiased=True).value) < 0.1


def test_collect_activations_removes_hooks():
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    acts = collect_activations(model, x, ["0", "2"])
    assert acts["0"].shape == (6, 5) and acts["2"].shape == (6, 2)
    assert torch.allclose(acts["2"], model(x), rtol=0, atol=0)  # same forward, bitwise
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(KeyError):
        collect_activations(model, x, ["nope"])
    assert linear_cka(acts["0"], acts["0"]).to_json()["value"] == pytest.approx(1.0, abs=1e-12)
