"""Lab 5: convert a pretrained model's top layers to ladder, and watch what breaks."""
from __future__ import annotations


from ..models.config import get_config
from ..models.model import Transformer
from .describe import what
from .runner import Verdict, call, failed, load_student


def reference_lags(n_layers: int, k: int) -> list[int]:
    """The lag of each layer of a hybrid model whose top k layers are ladder (the Ladder authors' Hybrid-Ladder
    Llama: the last k; see docs/references.md)."""
    return [int(i >= n_layers - k) for i in range(n_layers)]


def check_ladder_lags(fn) -> Verdict:
    """``fn(n_layers, k)`` -> [lag of layer 0, ..., lag of layer n-1]; compared with the model the package builds
    for ``ladder_layers=k`` (its Block.lag), for several (n, k)."""
    fn2, bad = load_student(fn)
    if bad:
        return bad
    for n, k in ((4, 2), (30, 15), (30, 0), (30, 30), (32, 16)):
        got, problem = call(fn2, n, k)
        if problem:
            return failed(problem)
        cfg = get_config("tiny", n_layers=n, ladder_layers=k)
        model_lags = [b.lag for b in Transformer(cfg, device="meta").layers]
        assert model_lags == reference_lags(n, k)
        if list(got) != model_lags:
            hint = "lag 1 for a ladder layer, 0 for a standard one"
            if list(got) == model_lags[::-1]:
                hint = "you converted the bottom k layers; the paper converts the top (last) k"
            elif sum(got) in (k - 1, k + 1):
                hint = "off by one: exactly k layers, the last ones (indices n-k .. n-1)"
            return Verdict(False, f"n_layers={n}, k={k}: you said {list(got)[:8]}{'...' if n > 8 else ''}",
                           hint)
    return Verdict(True)


def reference_distill(student_logits, teacher_logits, temperature: float, reverse: bool = False, scale: bool = True,
                      reduce: str = "mean"):
    """T^2 * mean over positions of KL(p_teacher || p_student), both softmax(logits / T) over the vocabulary."""
    import torch.nn.functional as F
    t = F.log_softmax(teacher_logits.float() / temperature, -1)
    s = F.log_softmax(student_logits.float() / temperature, -1)
    kl = ((s.exp() * (s - t)) if reverse else (t.exp() * (t - s))).sum(-1)
    kl = kl.mean() if reduce == "mean" else kl.sum() if reduce == "sum" else kl.sum() / kl.shape[0]   # batchmean
    return kl * temperature ** 2 if scale else kl


def check_distill_loss(fn) -> Verdict:
    """``fn(student_logits [B, T, V], teacher_logits [B, T, V], temperature)`` -> the distillation loss, a scalar
    tensor: T^2 times the mean over positions of KL(teacher || student) at temperature T."""
    import torch
    fn2, bad = load_student(fn)
    if bad:
        return bad
    g = torch.Generator().manual_seed(5)
    for temperature in (1.0, 2.0, 0.5):
        s_logits, t_logits = torch.randn(2, 3, 11, generator=g) * 2, torch.randn(2, 3, 11, generator=g) * 2
        got, problem = call(fn2, s_logits.clone().requires_grad_(), t_logits.clone(), temperature)
        if problem:
            return failed(problem)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return Verdict(False, f"returned {type(got).__name__}, expected a scalar tensor")
        want = reference_distill(s_logits, t_logits, temperature)
        if torch.allclose(got.detach().float(), want, rtol=1e-4, atol=1e-6):
            if not got.requires_grad:
                return Verdict(False, "the loss has no gradient", "the student's logits must stay in the graph")
            continue
        for kw, text, hint in (
                (dict(reverse=True), "that is KL(student || teacher), the reverse KL",
                 "distillation matches the teacher's distribution: the expectation is under the teacher"),
                (dict(scale=False), "the loss is not scaled by T^2",
                 "softening by T shrinks the gradients by 1/T^2; scaling keeps them comparable across T"),
                (dict(reduce="sum"), "you summed over positions", "average over the positions, so the loss does "
                 "not grow with batch and sequence length"),
                (dict(reduce="batchmean"), "you averaged over the batch only (kl_div's batchmean): the sum over "
                 "the sequence is still in it", "the mean is over every position: each sequence's tokens too")):
            if torch.allclose(got.detach().float(), reference_distill(s_logits, t_logits, temperature, **kw),
                              rtol=1e-4, atol=1e-6):
                return Verdict(False, f"temperature {temperature}: {text}", hint)
        return Verdict(False, f"temperature {temperature}: you said {float(got):.4f}, the loss is {float(want):.4f}",
                       "both distributions are softmax(logits / T) over the vocabulary (the last dimension)")
    return Verdict(True, "checked at temperatures 1, 2 and 0.5")


def check_choose_layers(fn) -> Verdict:
    """``fn(costs, k)`` -> the k layer indices (sorted) whose conversion costs least (``costs[i]``: the loss
    increase when layer i alone is made ladder)."""
    fn2, bad = load_student(fn)
    if bad:
        return bad
    costs = [1.83, 1.80, 0.09, 0.16, 0.021, 0.01, 0.03, 0.12, 0.02, 0.015, 0.35, 0.21]   # no ties: one answer
    for k in (0, 3, 6, 12):
        got, problem = call(fn2, list(costs), k)
        if problem:
            return failed(problem)
        try:
            got = [int(i) for i in (got.tolist() if hasattr(got, "tolist") else got)]   # a tensor or an array too
        except (TypeError, ValueError):
            return Verdict(False, f"k={k}: returned {what(got)}, expected a list of {k} layer indices")
        want = sorted(sorted(range(len(costs)), key=lambda i: costs[i])[:k])
        if sorted(got or []) == want and list(got or []) != want:
            return Verdict(False, f"k={k}: the right layers, unsorted", "return the indices in increasing order")
        if list(got or []) != want:
            hint = "the layers whose conversion costs least are the ones to convert"
            if sorted(got or []) == sorted(sorted(range(len(costs)), key=lambda i: -costs[i])[:k]):
                hint = "you chose the most expensive layers: convert the cheapest"
            elif list(got or []) == list(range(len(costs) - k, len(costs))):
                hint = "that is the top k by position (the paper's choice); choose by cost instead"
            return Verdict(False, f"k={k}: you chose {got}, the cheapest {k} are {want}", hint)
    return Verdict(True, "checked for k = 0, 3, 6, 12")


def check_distill_step(fn) -> Verdict:
    """``fn(student, teacher, tokens, optimizer, temperature)`` -> the loss (a float) of one distillation step
    that updates the student: logits of ``tokens[:, :-1]``, the distillation loss, backward, step, zero_grad.
    Compared, parameter by parameter, with the same step done by the package on a tiny model."""
    import torch
    from ..models.build import build_model, init_weights
    fn2, bad = load_student(fn)
    if bad:
        return bad
    cfg = get_config("tiny", n_layers=2)
    tokens = torch.randint(0, cfg.vocab_size, (2, 9), generator=torch.Generator().manual_seed(3))

    def pair():
        teacher = build_model(cfg, init_weights(cfg, 0)).eval()
        student = build_model(cfg.replace(arch="ladder"), init_weights(cfg, 0))
        return student, teacher, torch.optim.SGD(student.parameters(), lr=0.5)

    ref, teacher, opt = pair()
    losses = []
    for _ in range(2):
        with torch.no_grad():
            t_logits = teacher(tokens[:, :-1])
        loss = reference_distill(ref(tokens[:, :-1]), t_logits, 2.0)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    student, teacher2, opt2 = pair()
    for step in range(2):
        got, problem = call(fn2, student, teacher2, tokens, opt2, 2.0)
        if problem:
            return failed(problem)
        if any(p.grad is not None for p in teacher2.parameters()):
            return Verdict(False, "the teacher got gradients", "the teacher is a fixed target: compute its logits "
                           "without building a graph")
        if not isinstance(got, (int, float)) or abs(got - losses[step]) > 1e-4 * max(1.0, abs(losses[step])):
            return Verdict(False, f"step {step}: you returned {got!r}, the loss is {losses[step]:.4f}",
                           "return the loss's value as a float, computed before the update")
    for (name, a), b in zip(student.named_parameters(), ref.parameters()):
        if not torch.allclose(a, b, atol=1e-5):
            hint = "every step starts from zero gradients: clear them after (or before) each step"
            return Verdict(False, f"after two steps {name} differs from the reference step", hint)
    return Verdict(True, "two steps equal the reference, parameter by parameter")
