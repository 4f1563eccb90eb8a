"""Lab 2: the one loop in which standard, parallel block and ladder differ: when a pending all-reduce joins."""
from __future__ import annotations

from collections import deque

import torch
import torch.distributed as dist

from ..models.build import build_model, init_weights
from ..models.config import get_config
from ..tp import launch
from ..tp.comm import all_reduce_async
from ..tp.parallel import TPGroup
from .collectives import LEDGER
from .describe import describe, what
from .runner import Verdict, call, load, run_check

CASES = (("standard", 0), ("parallel", 0), ("ladder", 1))
MAX_WORLD = 4          # the tiny model's 4 kv heads shard over at most 4 ranks


class _Local:
    """A module's output joined without its all-reduce (a planted single-device loop reads it this way)."""

    def __init__(self, out):
        self.out = out

    def wait(self):
        return self.out


def reference_stream(x, modules, reduce, lag: int, drain: bool = True):
    """The package's rule (models/model.py): before a module runs, all but the newest ``lag`` pending outputs join
    the stream; after the last module, all of them (``drain``)."""
    return reference_hybrid(x, modules, [lag] * len(modules), reduce, drain=drain)


class Recorder:
    """What the student's loop did, in order: ("run", i) when module i runs, ("reduce", i) when its output's
    all-reduce starts, ("wait", i) when that all-reduce is waited for. A value check cannot see overlap: this can."""

    def __init__(self, modules, reduce):
        self.events: list[tuple[str, int]] = []
        self.modules = [self._module(i, m) for i, m in enumerate(modules)]
        self.reduce, self._reduce = self._start, reduce

    def _module(self, i, module):
        def run(x):
            self.events.append(("run", i))
            return module(x)
        return run

    def _start(self, out):
        i = max((k for kind, k in self.events if kind == "run"), default=-1)
        self.events.append(("reduce", i))
        LEDGER.append("reduce")
        handle, events = self._reduce(out), self.events

        class Handle:
            def wait(self):
                events.append(("wait", i))
                return handle.wait()

            def __getattr__(self, name):
                return getattr(handle, name)
        return Handle()


def schedule_problem(events: list[tuple[str, int]], lags: list[int]) -> str | None:
    """How the recorded loop breaks the due rule's overlap, or None: before module i runs, exactly the all-reduces
    of modules 0 .. i-1-lag have been waited for, and module i's all-reduce starts before module i+1 runs."""
    waited: set[int] = set()
    started: set[int] = set()
    for kind, i in events:
        if kind == "wait":
            waited.add(i)
        elif kind == "reduce":
            started.add(i)
        elif kind == "run":
            if i and i - 1 not in started:
                return (f"module {i - 1}'s all-reduce had not started when module {i} ran: an all-reduce started "
                        f"only when its output joins the stream has nothing left to overlap")
            early = {j for j in waited if j > i - 1 - lags[i]}
            if early:
                j = max(early)
                return (f"module {i} (lag {lags[i]}) ran after your loop waited for module {j}'s all-reduce: the "
                        f"values are right, but that all-reduce could not overlap module {i}")
    return None


def _setup(arch: str):
    tp = TPGroup.from_dist()
    dev = launch.current_device()
    cfg = get_config("tiny", arch=arch, n_layers=3)
    model = build_model(cfg, init_weights(cfg, 5), tp, device=dev)
    tokens = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(1)).to(dev)
    rope = (model.rope_cos, model.rope_sin)
    modules = [fn for layer in model.layers for _, fn in layer.steps(0, rope)]
    return model, tp, tokens, modules


def stream_worker(source: str, name: str) -> Verdict:
    fn, bad = load(source, name)
    if bad:
        return bad
    for arch, lag in CASES:
        model, tp, tokens, modules = _setup(arch)
        reduce = lambda out: all_reduce_async(out, tp)      # noqa: E731 - the references call it
        rec = Recorder(modules, reduce)                     # what the student's loop calls
        with torch.no_grad():
            x = model.embed_tokens(tokens)
            got, problem = call(fn, x, rec.modules, rec.reduce, lag)
            dist.barrier()
            if problem:
                hint = ""
                if "IndexError" in problem or "empty" in problem:
                    hint = ("your loop waited for more pending outputs than there were: how many may still be in "
                            "flight when a module starts, and is the comparison that stops the waiting strict?")
                return Verdict(False, f"{arch} (lag {lag}): {problem}", hint)
            want = reference_stream(x, modules, reduce, lag)
            if not isinstance(got, torch.Tensor) or got.shape != want.shape:
                return Verdict(False, f"{arch}: returned {what(got)}, expected the stream of shape "
                               f"{tuple(want.shape)}")
            got = got.to(want.dtype)
            logits = model(tokens)
            head = model.head(got)
            if torch.allclose(got, want, atol=1e-5) and torch.allclose(head, logits, atol=1e-4):
                late = schedule_problem(rec.events, [lag] * len(modules))
                if late:
                    return Verdict(False, f"{arch} (lag {lag}): {late}", "in ladder the newest output is still in "
                                   "flight while the next module runs: when does your loop start each all-reduce, "
                                   "and when does it wait?")
                continue
            if torch.allclose(got, reference_stream(x, modules, _Local, lag), atol=1e-5):
                return Verdict(False, f"{arch}: the modules' outputs joined the stream without their all-reduce",
                               "under TP each module returns this rank's partial sum: the stream needs the sum over "
                               "ranks, which only the reduction started for each output provides")
            if lag and torch.allclose(got, reference_hybrid(x, modules, [lag] * len(modules), reduce,
                                                            newest_first=True), atol=1e-5):
                return Verdict(False, f"{arch}: your loop joined the newest pending output and left an older one in "
                               "flight", "outputs become due in the order they were started: which one has had a "
                               "whole module to finish?")
            if lag and torch.allclose(got, reference_stream(x, modules, reduce, 0), atol=1e-5):
                return Verdict(False, "with lag=1 (ladder) your loop waits for every all-reduce before the next "
                               "module", "a ladder module starts with the newest output still in flight: how many "
                               "pending outputs may it leave unadded?")
            if torch.allclose(got, reference_stream(x, modules, reduce, lag, drain=False), atol=1e-5):
                return Verdict(False, f"{arch}: the outputs still pending after the last module never joined "
                               "the stream", "the head needs the whole stream: what is still in flight at the end?")
            return Verdict(False, f"{arch} (lag {lag}): the stream is wrong: {describe(got, want)}",
                           "each module reads the stream with every due output added; its own output joins "
                           "later, once reduced")
    return Verdict(True)


def check_forward_stream(fn, world: int | None = None) -> Verdict:
    """``fn(x, modules, reduce, lag)`` -> the residual stream, for standard (lag 0), parallel block (its modules
    are whole layers, lag 0) and ladder (lag 1), each compared with the package's model on real ranks."""
    return run_check(stream_worker, fn, world=world, max_world=MAX_WORLD)


def reference_hybrid(x, modules, lags, reduce, lag_of_previous: bool = False, drain: bool = True,
                     newest_first: bool = False):
    """The due rule with a lag per module (``models/model.py``: the lag of the layer about to run);
    ``newest_first`` joins the newest pending output first (a planted mistake)."""
    pending = deque()
    for i, module in enumerate(modules):
        lag = lags[i - 1] if lag_of_previous and i else lags[i]
        while len(pending) > lag:
            x = x + (pending.pop() if newest_first else pending.popleft()).wait()
        pending.append(reduce(module(x)))
    while drain and pending:
        x = x + pending.popleft().wait()
    return x


def hybrid_worker(source: str, name: str) -> Verdict:
    fn, bad = load(source, name)
    if bad:
        return bad
    tp, dev = TPGroup.from_dist(), launch.current_device()
    for k in (1, 2, 3, (1,), (0, 2)):                  # the top k, and sets of layers anywhere
        cfg = get_config("tiny", n_layers=4, ladder_layers=k)
        which = f"top {k} of 4 layers ladder" if isinstance(k, int) else f"layers {k} of 4 ladder"
        model = build_model(cfg, init_weights(cfg, 5), tp, device=dev)
        tokens = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(1)).to(dev)
        rope = (model.rope_cos, model.rope_sin)
        modules = [fn_ for layer in model.layers for _, fn_ in layer.steps(0, rope)]
        lags = [layer.lag for layer in model.layers for _ in layer.steps(0, rope)]
        reduce = lambda out: all_reduce_async(out, tp)      # noqa: E731
        rec = Recorder(modules, reduce)
        with torch.no_grad():
            x = model.embed_tokens(tokens)
            got, problem = call(fn, x, rec.modules, list(lags), rec.reduce)
            dist.barrier()
            if problem:
                return Verdict(False, f"{which}: {problem}")
            if not isinstance(got, torch.Tensor) or got.shape != x.shape:
                return Verdict(False, f"returned {what(got)}, expected the stream "
                               f"of shape {tuple(x.shape)}")
            if torch.allclose(model.head(got), model(tokens), atol=1e-4):
                late = schedule_problem(rec.events, lags)
                if late:
                    return Verdict(False, f"{which}: {late}", "a ladder layer's modules leave the newest output "
                                   "in flight: when does your loop start each all-reduce, and when does it wait?")
                continue
            if torch.allclose(got, reference_hybrid(x, modules, lags, reduce, lag_of_previous=True), atol=1e-5):
                return Verdict(False, f"{which}: the boundary between a standard and a ladder "
                               "layer is off by one module", "the module about to run decides how many outputs "
                               "may stay in flight, not the one that just ran")
            if torch.allclose(got, reference_hybrid(x, modules, [max(lags)] * len(lags), reduce), atol=1e-5):
                return Verdict(False, f"{which}: every module used the ladder lag",
                               "a hybrid model's standard layers still wait for every all-reduce")
            return Verdict(False, f"{which}: the logits differ from the package's hybrid model",
                           "one lag per module: the lag of the layer that module belongs to")
    return Verdict(True, "checked against the package's hybrid model for the top 1, 2, 3 of 4 layers and for "
                         "layers (1,) and (0, 2)")


def check_forward_hybrid(fn, world: int | None = None) -> Verdict:
    """``fn(x, modules, lags, reduce)`` -> the residual stream of a hybrid model (one lag per module), compared
    with the package's hybrid models (the top k layers, and sets of layers) on real ranks."""
    return run_check(hybrid_worker, fn, world=world, max_world=MAX_WORLD)
