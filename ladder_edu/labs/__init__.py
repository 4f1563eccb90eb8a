"""Classroom labs: exercises whose check functions run the student's code on real ranks and say what is wrong.

Each lab is an nbgrader assignment (``notebooks/labs/source/<lab>/``: solution regions between ``### BEGIN
SOLUTION`` and ``### END SOLUTION``, autograded cells that call a check); ``nbgrader generate_assignment`` makes the
student release. The checks live here:

* lab 1: ``check_column_parallel``, ``check_row_parallel`` (tp_checks), ``check_tp_mlp``, ``check_tp_attention``
  (tp_layer_checks)
* lab 2: ``check_forward_stream``, ``check_forward_hybrid`` (due_checks): standard, parallel block, ladder and
  a hybrid from one loop
* lab 3: ``check_allreduce_model``, ``check_roofline``, ``check_schedule`` (model_checks), then
  ``check_predicted_speedup``, ``explain_gap`` (perf_checks)
* lab 4: ``check_intervals_from_trace``, ``check_exposed_communication``, ``check_room`` (profile_checks)
* lab 5: ``check_ladder_lags``, ``check_choose_layers``, ``check_distill_loss``, ``check_distill_step``
  (convert_checks)
"""
from .convert_checks import check_choose_layers, check_distill_loss, check_distill_step, check_ladder_lags
from .model_checks import check_allreduce_model, check_fit_alpha_beta, check_roofline, check_schedule
from .due_checks import check_forward_hybrid, check_forward_stream
from .perf_checks import check_predicted_speedup, explain_gap
from .profile_checks import check_exposed_communication, check_intervals_from_trace, check_room
from .runner import Verdict
from .tp_checks import check_column_parallel, check_row_parallel, check_shard_layer
from .tp_layer_checks import check_tp_attention, check_tp_mlp

__all__ = ["check_column_parallel", "check_row_parallel", "check_tp_mlp", "check_tp_attention", "check_forward_stream",
           "check_forward_hybrid", "check_intervals_from_trace", "check_distill_step", "check_fit_alpha_beta",
           "check_shard_layer",
           "check_allreduce_model", "check_roofline", "check_schedule", "check_predicted_speedup", "explain_gap",
           "check_exposed_communication", "check_room", "check_ladder_lags", "check_choose_layers",
           "check_distill_loss", "Verdict"]
