"""ladder_edu: learn how tensor-parallel inference hides communication behind computation.

Standard, parallel-block and ladder-residual transformers on real torch.distributed process groups; see README.md.
The layers, each importing only the ones below it, are listed once in ``teach/layout.py`` (``SUBPACKAGES``):
util, tp, models, profiling, perf.model, perf.measure, recovery, teach, labs, cli.
"""
from .models.build import build_model, init_weights
from .models.config import ARCHS, BENCH_VARIANTS, PRESETS, ModelConfig, get_config, variant_config
from .models.generate import generate, sample
from .models.model import Transformer
from .tp.parallel import ColumnParallelLinear, RowParallelLinear, TPGroup, shard_state_dict

__version__ = "0.1.0"
__all__ = ["ARCHS", "BENCH_VARIANTS", "PRESETS", "ModelConfig", "get_config", "variant_config", "generate", "sample",
           "Transformer", "build_model", "init_weights", "ColumnParallelLinear", "RowParallelLinear", "TPGroup",
           "shard_state_dict"]
