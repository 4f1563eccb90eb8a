"""perf.model: the analytic performance model of tensor-parallel inference (imports no measurement)."""
