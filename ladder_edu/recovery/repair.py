"""Local repair of a converted model in closed form: refit each converted module's output projection.

A module writes ``h = W z``: W is its output projection (attention's ``o_proj``, the MLP's ``down_proj``) and z its
features (the concatenated heads; silu(x W_g) * x W_u) computed from the stream it reads. In a ladder layer that
stream is one module stale, so z changes while W was trained for the fresh z. Given calibration text, take for
every token t the converted model's features z_t and the original model's module output y_t (from its fresh
stream), and refit W by ridge regression towards the current weight W0 (ReplaceMe, arXiv 2505.02819, fixes a pruned
block with such a least-squares map; LoLCATs, arXiv 2410.10254, matches converted layers to the original's outputs
before fine-tuning):

    W* = argmin_W  sum_t |W z_t - y_t|^2 + lam |W - W0|_F^2      =>      W*^T = (Z^T Z + lam I)^-1 (Z^T Y + lam W0^T)

with lam = ``ridge`` * trace(Z^T Z) / n_features (scale-free). W* replaces W0: no new parameters, and the
row-parallel sharding of W (by columns: by features) is unchanged. Modules are repaired in order from the first
converted layer, attention before MLP, each from features of the model repaired so far and targets of the
original, so that each fit sees the inputs it will see once the earlier modules are fixed.
"""
from __future__ import annotations

import torch


class _Stop(Exception):
    """Raised by a hook once the wanted features are captured: the rest of the forward is not needed."""


def _projection(layer, kind: str):
    return layer.self_attn.o_proj if kind == "attn" else layer.mlp.down_proj


def _module(layer, kind: str):
    return layer.self_attn if kind == "attn" else layer.mlp


@torch.no_grad()
def module_outputs(model, tokens: torch.Tensor, targets: list[tuple[int, str]], batch: int = 4) -> dict:
    """{(layer, kind): [N, dim] float32} the output of each module in ``targets`` over ``tokens`` [B, T]."""
    out = {key: [] for key in targets}
    hooks = [_module(model.layers[j], kind).register_forward_hook(
        lambda m, args, y, key=(j, kind): out[key].append(y.float().reshape(-1, y.shape[-1])))
        for j, kind in targets]
    try:
        for i in range(0, len(tokens), batch):
            model(tokens[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
    return {key: torch.cat(v) for key, v in out.items()}


@torch.no_grad()
def features(model, tokens: torch.Tensor, layer: int, kind: str, batch: int = 4) -> torch.Tensor:
    """[N, n_features] the input of module (layer, kind)'s output projection over ``tokens`` (the forward stops
    there)."""
    got = []

    def grab(module, args):
        got.append(args[0].float().reshape(-1, args[0].shape[-1]))
        raise _Stop

    hook = _projection(model.layers[layer], kind).register_forward_pre_hook(grab)
    try:
        for i in range(0, len(tokens), batch):
            try:
                model(tokens[i:i + batch])
            except _Stop:
                pass
    finally:
        hook.remove()
    return torch.cat(got)


def least_squares(z: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """The W [out, in] minimising |z W^T - y|^2 + lam |W - w0|^2 (module docstring), solved in float64."""
    z, y, w0 = z.double(), y.double(), w0.double()
    gram = z.T @ z
    lam = ridge * float(torch.diagonal(gram).mean()) + 1e-12
    rhs = z.T @ y + lam * w0.T
    wt = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), rhs)
    return wt.T


def relative_error(pred: torch.Tensor, target: torch.Tensor) -> float:
    """|pred - target|^2 / |target|^2 over all tokens."""
    return float((pred - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-30))


@torch.no_grad()
def repair(model, original, tokens: torch.Tensor, layers=None, ridge: float = 1e-3, batch: int = 4,
           progress: bool = False) -> list[dict]:
    """Refit, in place, the output projection of every attention and MLP of ``model``'s ladder layers (or of
    ``layers``) so that their outputs match ``original``'s on ``tokens`` (module docstring). One device; the two
    models share a config but for their ladder layers. Returns, per module, the relative error of its output to
    the original's before and after its refit (both with the earlier modules already repaired)."""
    from tqdm.auto import tqdm
    layers = sorted(model.cfg.ladder_set if layers is None else layers)
    targets = [(j, kind) for j in layers for kind in ("attn", "mlp")]
    was = model.training
    model.eval()
    wanted = module_outputs(original, tokens, targets, batch)
    report = []
    for j, kind in tqdm(targets, desc="closed-form repair", disable=not progress):
        z = features(model, tokens, j, kind, batch)
        proj = _projection(model.layers[j], kind)
        before = relative_error(z @ proj.weight.float().T, wanted[(j, kind)])
        w = least_squares(z, wanted[(j, kind)], proj.weight.detach(), ridge)
        proj.weight.copy_(w.to(proj.weight.dtype))
        after = relative_error(z @ proj.weight.float().T, wanted[(j, kind)])
        report.append({"layer": j, "module": kind, "before": before, "after": after})
    model.train(was)
    return report
