"""How a wrong answer differs from the right one, computed from the two outputs: the fallback of every check when no
named misconception matches, so that a student never reads only "values differ by up to X".

``describe(got, want)`` tries, in order: the same values with the opposite sign; a constant factor c (got = c want);
a transpose; the rows (tokens) shifted by one; the right columns in another order (a permutation, e.g. of heads);
some rows right and others not. Otherwise it says how much of the output is right and how large the error is
against the values. ``as_number`` reads a scalar answer (a number or a one-element tensor) without crashing on
anything else a student returns.
"""
from __future__ import annotations

import torch

ATOL, RTOL = 1e-4, 1e-4


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=ATOL, rtol=RTOL)


def describe(got: torch.Tensor, want: torch.Tensor) -> str:
    """One line: how ``got`` differs from ``want`` (same shape; any dtype or device)."""
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    if _close(got, -want):
        return "every value has the opposite sign"
    flat_w, flat_g = want.flatten(), got.flatten()
    norm = float(flat_w @ flat_w)
    if norm > 0:
        c = float(flat_g @ flat_w) / norm
        if abs(c - 1) > 1e-3 and _close(got, c * want):
            return f"every value is {c:.3g} times the right one (a constant factor)"
    if got.dim() == 2 and got.shape[0] == got.shape[1] and _close(got, want.T):
        return "the output is transposed"
    if got.dim() >= 1 and got.shape[0] > 1:
        if _close(got[1:], want[:-1]) or _close(got[:-1], want[1:]):
            return "the rows (tokens) are shifted by one position"
        rows = [bool(torch.allclose(got[i], want[i], atol=ATOL, rtol=RTOL)) for i in range(got.shape[0])]
        if got.dim() == 2:
            cols = [any(torch.allclose(got[:, j], want[:, k], atol=ATOL, rtol=RTOL) for k in range(want.shape[1]))
                    for j in range(got.shape[1])]
            if all(cols) and not all(rows):
                return "the right values in the wrong columns (the features, or heads, in another order)"
        if any(rows) and not all(rows):
            right = [i for i, ok in enumerate(rows) if ok]
            return f"rows {right} of {got.shape[0]} are right, the others are not"
    ok = torch.isclose(got, want, atol=ATOL, rtol=RTOL).float().mean()
    err, size = float((got - want).abs().max()), float(want.abs().max())
    return (f"{100 * float(ok):.0f}% of the values are right; the largest error is {err:.3g} against values up to "
            f"{size:.3g}")


def as_number(got) -> float | None:
    """``got`` as a float when it is a number or a one-element tensor, else None."""
    if isinstance(got, bool):
        return None
    if isinstance(got, (int, float)):
        return float(got)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        return float(got.detach().cpu())
    return None


def what(got) -> str:
    """What a student returned, in a few words: "None", "a list of 3", "a tensor of shape (4, 8) and dtype ..."."""
    if got is None:
        return "None"
    if isinstance(got, torch.Tensor):
        return f"a tensor of shape {tuple(got.shape)}, dtype {str(got.dtype).replace('torch.', '')}"
    if isinstance(got, (list, tuple, dict, set)):
        return f"a {type(got).__name__} of {len(got)}"
    return f"a {type(got).__name__}"
