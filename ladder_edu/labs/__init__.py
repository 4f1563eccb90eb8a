"""Classroom labs: exercises whose check functions run the student's code on real ranks and say what is wrong.

Each lab is an nbgrader assignment (``notebooks/labs/source/<lab>/``: solution regions between ``### BEGIN
SOLUTION`` and ``### END SOLUTION``, autograded cells that call a check); ``nbgrader generate_assignment`` makes the
student release. Every check is written one way (``runner``): load the student's function from its source
(``load_student``), run it on the exercise's inputs (``call``; on real ranks with ``run_check``), name a wrong answer
by the first ``Misconception`` it matches (``diagnose``), and return a ``Verdict``. ``LABS`` is the index, one row
per lab; the list below is written from it.
"""
from __future__ import annotations

import importlib

from .runner import Verdict, never_crashes

LABS = (   # (assignment folder, what the student builds, {checks module: its checks})
    ("lab1_tensor_parallel_linear", "column- and row-parallel linears, a sharded layer, the TP MLP and attention",
     {"tp_checks": ("check_column_parallel", "check_row_parallel", "check_shard_layer"),
      "tp_layer_checks": ("check_tp_mlp", "check_tp_attention")}),
    ("lab2_due_rule", "standard, parallel block, ladder and a hybrid from one loop (the due rule)",
     {"due_checks": ("check_forward_stream", "check_forward_hybrid")}),
    ("lab3_predict_then_measure", "a model of a decode step, then the package's prediction beside a measurement",
     {"model_checks": ("check_allreduce_model", "check_fit_alpha_beta", "check_roofline", "check_schedule"),
      "perf_checks": ("check_predicted_speedup", "explain_gap")}),
    ("lab4_read_a_profile", "a profile analyser: intervals, exposed communication, the room to hide it",
     {"profile_checks": ("check_intervals_from_trace", "check_exposed_communication", "check_room")}),
    ("lab5_convert_a_pretrained_model", "conversion and distillation: lags, the layer choice, the loss, one step",
     {"convert_checks": ("check_ladder_lags", "check_choose_layers", "check_distill_loss", "check_distill_step")}),
)

__all__ = ["Verdict", "LABS"]
for _lab, _what, _modules in LABS:
    for _module, _names in _modules.items():
        _m = importlib.import_module(f".{_module}", __name__)
        globals().update({n: never_crashes(getattr(_m, n)) if n.startswith("check_") else getattr(_m, n)
                          for n in _names})
        __all__ += list(_names)
    __doc__ += f"\n* {_lab}: {_what}: " + "; ".join(
        ", ".join(f"``{n}``" for n in names) + f" ({module})" for module, names in _modules.items())
