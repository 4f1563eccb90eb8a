"""Classroom labs: exercises whose check functions run the student's code on real ranks and say what is wrong.

Each lab is an nbgrader assignment (``notebooks/labs/source/<lab>/``: solution regions between ``### BEGIN
SOLUTION`` and ``### END SOLUTION``, autograded cells that call a check); ``nbgrader generate_assignment`` makes the
student release. The checks live here:

* lab 1: ``check_column_parallel``, ``check_row_parallel`` (tp_checks)
* lab 2: ``check_forward_stream`` (due_checks): standard, parallel block and ladder from one loop
* lab 3: ``check_predicted_speedup``, ``explain_gap`` (perf_checks)
* lab 4: ``check_exposed_communication`` (profile_checks)
* lab 5: ``check_ladder_lags`` (convert_checks)
"""
from .convert_checks import check_ladder_lags
from .due_checks import check_forward_stream
from .perf_checks import check_predicted_speedup, explain_gap
from .profile_checks import check_exposed_communication
from .runner import Verdict
from .tp_checks import check_column_parallel, check_row_parallel

__all__ = ["check_column_parallel", "check_row_parallel", "check_forward_stream", "check_predicted_speedup",
           "explain_gap", "check_exposed_communication", "check_ladder_lags", "Verdict"]
