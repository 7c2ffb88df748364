"""Smoke check of the device path: every model family trained as an ensemble and every model-scope
instrument measured on one device, one line each (name, seconds, a finite headline).

Run on a GPU machine: `python bench/cuda_smoke.py` (default --device cuda); here, without a GPU,
`python bench/cuda_smoke.py --device cpu` checks the script itself. Exit 1 if anything fails.
"""

import argparse
import math
import sys
import time

import torch

from lmech.instruments.losses import named_loss
from lmech.observables import REGISTRY, make_observer, measure
from lmech.spec import RunSpec
from lmech.train import build_ensemble, member_module, train_ensemble

TOKENS = {"name": "markov_language", "vocab_size": 8, "seq_len": 16, "n_train": 64, "n_test": 16}
FAMILIES = {
    "mlp": ({"name": "digits"}, {"width": 32, "depth": 2}),
    "transformer": (TOKENS, {"kind": "transformer", "width": 32, "heads": 2, "depth": 2, "context": 16}),
    "cnn": ({"name": "digits"}, {"kind": "cnn", "dim": 2, "width": 8}),
    "resmlp": ({"name": "digits"}, {"kind": "resmlp", "width": 32, "depth": 2}),
    "linear_recurrence": (TOKENS, {"kind": "linear_recurrence", "width": 16, "depth": 1}),
}
OPTIONS = {"gradient_noise_scale": {"small_batch": 4, "big_batch": 32, "num_pairs": 2},
           "critical_batch_forecast": {"small_batch": 4, "big_batch": 32, "num_pairs": 2},
           "hessian_trace": {"num_probes": 4}, "effective_dimensionality": {"z": 0.1, "k": 2},
           "hessian_spectral_density": {"num_probes": 1, "lanczos_steps": 8, "grid_size": 20},
           "local_learning_coefficient": {"num_chains": 2, "num_steps": 5, "num_burnin": 1},
           "weight_spectrum": {"min_eigenvalues": 2, "min_tail": 2}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    device = parser.parse_args().device
    failures = 0
    for family, (task, model) in FAMILIES.items():
        start = time.perf_counter()
        specs = [RunSpec.model_validate({"task": task, "model": model, "steps": 10, "seed": s, "device": device,
                                         "optimizer": {"name": "adamw", "lr": 1e-3, "batch_size": 16},
                                         "observe": {"loss": {"every": 10}, "sharpness": {"every": 10, "max_iter": 10}}})
                 for s in range(4)]
        results = train_ensemble(specs, *make_observer(specs[0].observe, specs[0].steps))
        final = [v for s, n, v in results[0].rows if n == "loss/train" and s == 10]
        ok = bool(final) and math.isfinite(final[0]) and results[0].device.startswith(device.split(":")[0])
        failures += not ok
        print(f"train {family:18s} K=4 on {results[0].device}: {time.perf_counter() - start:6.2f} s "
              f"loss/train {final[0] if final else float('nan'):.4f} {'ok' if ok else 'FAILED'}")
    state = build_ensemble([RunSpec.model_validate({"task": {"name": "digits"}, "model": {"width": 16, "depth": 1},
                                                    "device": device, "steps": 0})])
    module, loss = member_module(state, 0), named_loss(state.loss)
    batch = (state.x_train[:64], state.y_train[:64])
    needs = {"preconditioned_sharpness": {"preconditioner": torch.ones(sum(p.numel() for p in module.parameters()),
                                                                      device=batch[0].device)},
             "loss_barrier": {"theta1": {n: 0.5 * p.detach() for n, p in module.named_parameters()}}}
    for name, entry in REGISTRY.items():
        if entry.scope != "model":
            continue
        start = time.perf_counter()
        rows = measure(module, loss, batch, [name], seed=0, **{name: {**OPTIONS.get(name, {}),
                                                                      **needs.get(name, {})}}).rows()
        ok = bool(rows) and all(math.isfinite(v) for k, v in rows.items() if "alpha" not in k and "xmin" not in k)
        failures += not ok
        print(f"measure {name:26s} on {batch[0].device}: {time.perf_counter() - start:6.2f} s "
              f"{len(rows)} rows {'ok' if ok else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
