"""perf: how fast each architecture runs. ``perf.model`` predicts it from first principles (hardware data sheets,
NCCL's cost model, the kernels a step launches, the critical path of the due rule); ``perf.measure`` measures it
(interleaved benchmarks, the emulated rank of a big deployment, this machine's and a GPU's presets)."""
