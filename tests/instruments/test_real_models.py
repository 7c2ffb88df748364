"""Instruments on a model lmech did not write: a `transformers` GPT-2 from a config in its default
state (train mode, dropout 0.1, fused SDPA attention), through `lmech.measure` and `lmech measure`,
against float64 brute force on the same weights in eval mode (an explicit Hessian and Jacobian)."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, hessian, jacrev
from typer.testing import CliRunner

pytest.importorskip("transformers")

from lmech.cli import app  # noqa: E402
from lmech.instruments.losses import named_loss  # noqa: E402
from lmech.observables import measure  # noqa: E402

from tests.cli.gpt2_fixtures import gpt2, tokens  # noqa: E402

CE = named_loss("cross_entropy")


def _flat(model):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])

    def unflat(v):
        out, i = {}, 0
        for n, s in zip(names, shapes):
            out[n] = v[i:i + s.numel()].view(s)
            i += s.numel()
        return out

    return flat, unflat


@pytest.fixture(scope="module")
def brute_force():
    """Top Hessian eigenvalue, Hessian trace and NTK (trace over logits) in float64, eval mode."""
    model = gpt2().double().eval()
    x, y = tokens()
    flat, unflat = _flat(model)

    def loss(v):
        return CE(functional_call(model, unflat(v), (x,)).logits, y)

    def logits(v):
        return functional_call(model, unflat(v), (x,)).logits.reshape(x.shape[0], -1)

    with torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.MATH]):
        h = hessian(loss)(flat)
        j = jacrev(logits)(flat)  # (N, T*V, P)
    evals = torch.linalg.eigvalsh(h)
    return {"sharpness": float(evals[-1]), "trace": float(torch.trace(h)),
            "ntk": torch.einsum("ncp,mcp->nm", j, j)}


def test_default_state_gpt2_through_measure(brute_force):
    model = gpt2()
    assert model.training and model.config._attn_implementation == "sdpa"  # the default state
    before_rng = torch.get_rng_state()
    m = measure(model, CE, tokens(), ["sharpness", "hessian_trace", "ntk_gram"], seed=0,
                sharpness={"rel_tol": 1e-6}, hessian_trace={"num_probes": 400})
    assert model.training and torch.equal(before_rng, torch.get_rng_state())
    # float32 Lanczos on the float32 model vs float64 eigvalsh: float32 rounding, 1e-4 relative
    assert abs(float(m["sharpness"].eigenvalues[0]) - brute_force["sharpness"]) < 1e-4 * brute_force["sharpness"]
    trace = m["hessian_trace"]  # Hutchinson: within 4 standard errors of the exact trace
    assert abs(trace.estimate - brute_force["trace"]) < 4 * trace.standard_error
    gram = m["ntk_gram"].gram.double()
    assert torch.linalg.norm(gram - brute_force["ntk"]) < 1e-4 * torch.linalg.norm(brute_force["ntk"])
    # negative control: in train mode (dropout on) the sharpness is another number
    noisy = measure(model, CE, tokens(), ["sharpness"], seed=0, mode="train")
    assert abs(float(noisy["sharpness"].eigenvalues[0]) - brute_force["sharpness"]) > 1e-3 * brute_force["sharpness"]


def test_default_state_gpt2_through_the_cli(brute_force, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "cli"))
    result = CliRunner().invoke(app, ["measure", "--model", "gpt2_fixtures:gpt2", "--data", "gpt2_fixtures:tokens",
                                      "--observables", "sharpness,hessian_trace,ntk_gram",
                                      "--set", "sharpness.rel_tol=1e-6", "--set", "hessian_trace.num_probes=400",
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["loss"] == "cross_entropy" and out["mode"] == "eval"
    res = out["results"]
    assert abs(res["sharpness"]["eigenvalues"][0] - brute_force["sharpness"]) < 1e-4 * brute_force["sharpness"]
    assert abs(res["hessian_trace"]["estimate"] - brute_force["trace"]) < 4 * res["hessian_trace"]["standard_error"]
    gram = torch.tensor(res["ntk_gram"]["gram"], dtype=torch.float64)
    assert torch.linalg.norm(gram - brute_force["ntk"]) < 1e-4 * torch.linalg.norm(brute_force["ntk"])


def test_half_precision_and_meta_models():
    model, batch = gpt2(), tokens()
    reference = float(measure(model, CE, batch, "sharpness", seed=0)["sharpness"].eigenvalues[0])
    half = measure(model.to(torch.bfloat16), CE, batch, "sharpness", seed=0)["sharpness"]
    # computed in float32 on a copy of the bfloat16 weights: bfloat16 weight rounding (~1e-2), not arithmetic
    assert math.isfinite(float(half.eigenvalues[0])) and abs(float(half.eigenvalues[0]) - reference) < 0.05 * reference
    size = sum(p.numel() for p in model.parameters())
    floor = torch.finfo(torch.float32).eps * size**0.5 * abs(float(half.eigenvalues[0]))
    assert float(half.error_bounds[0]) >= floor and float(half.residual_bounds[0]) >= floor  # no claim beyond float32
    assert next(model.parameters()).dtype == torch.bfloat16  # the user's model is left in its dtype
    from lmech.errors import InputError

    with torch.device("meta"):
        meta = torch.nn.Linear(3, 2)
    with pytest.raises(InputError, match="meta device"):
        measure(meta, CE, (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)), "weight_spectrum")
