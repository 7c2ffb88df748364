"""gradient_noise_scale on linear regression, whose per-example gradients are known exactly."""

import torch
from tests.instruments._reference import assert_untouched, snapshot

from lmech.instruments.gradient_noise_scale import gradient_noise_scale


def _setup(n=20000, d=5, sigma=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    y = x @ w_true + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(d, 1, bias=False).double()
    delta = torch.randn(d, generator=g, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_((w_true + delta)[None])
    return model, (x, y[:, None]), w_true, delta, sigma


def _mse_half(out, y):
    return 0.5 * ((out - y) ** 2).mean()


def _exact(model, x, y):
    """G and tr(Sigma) of the data set from closed-form per-example gradients g_i = r_i x_i."""
    r = (x @ model.weight.detach()[0] - y[:, 0])
    per = r[:, None] * x
    mean = per.mean(dim=0)
    return mean.pow(2).sum().item(), (per - mean).pow(2).sum(dim=1).mean().item(), per


def test_matches_exact_dataset_quantities_and_negative_control():
    model, data, _, _, _ = _setup()
    g2, tr, _ = _exact(model, *data)
    before = snapshot(model)
    r = gradient_noise_scale(model, _mse_half, data, small_batch=8, big_batch=256, num_pairs=300, seed=1)
    assert_untouched(model, before)
    # unbiased estimators averaged over 300 pairs: 4 standard errors
    assert abs(r.grad_norm_sq - g2) < 4 * r.grad_norm_sq_se
    assert abs(r.trace_sigma - tr) < 4 * r.trace_sigma_se
    assert abs(r.b_simple - tr / g2) / (tr / g2) < 4 * (r.trace_sigma_se / r.trace_sigma
                                                        + r.grad_norm_sq_se / r.grad_norm_sq)
    assert abs(r.trace_sigma - 2 * tr) > 4 * r.trace_sigma_se  # a wrong covariance is caught


def test_dataset_covariance_matches_population_closed_form():
    """tr(Sigma) = (D + 1)|delta|^2 + sigma^2 D for x ~ N(0, I): checks the reference itself."""
    model, data, _, delta, sigma = _setup()
    _, tr, per = _exact(model, *data)
    d = data[0].shape[1]
    pop = (d + 1) * delta.pow(2).sum().item() + sigma**2 * d
    sq = per.pow(2).sum(dim=1)
    se = (sq.std() / len(sq) ** 0.5).item()  # sampling error of the data set's mean |g_i|^2
    assert abs(tr - pop) < 4 * se  # 4 SE of the data set mean; |G|^2 fluctuation is far smaller


def test_seeded_and_json():
    model, data, _, _, _ = _setup(n=500)
    a = gradient_noise_scale(model, _mse_half, data, small_batch=4, big_batch=64, num_pairs=5, seed=3)
    b = gradient_noise_scale(model, _mse_half, data, small_batch=4, big_batch=64, num_pairs=5, seed=3)
    assert a == b
    assert set(a.to_json()) == {"b_simple", "grad_norm_sq", "trace_sigma", "grad_norm_sq_se",
                                "trace_sigma_se", "num_pairs", "small_batch", "big_batch"}
