"""perf.measure: benchmarks and measured hardware presets (may use the model, never the other way round)."""
