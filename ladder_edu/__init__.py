"""ladder_edu: learn how tensor-parallel inference hides communication behind computation.

Standard, parallel-block and ladder-residual transformers on real torch.distributed process groups; see README.md.
"""
from .config import ARCHS, BENCH_VARIANTS, PRESETS, ModelConfig, get_config, variant_config
from .generate import generate, sample
from .model import Transformer, init_weights
from .parallel import ColumnParallelLinear, RowParallelLinear, TPGroup, shard_state_dict

__version__ = "0.1.0"
__all__ = ["ARCHS", "BENCH_VARIANTS", "PRESETS", "ModelConfig", "get_config", "variant_config", "generate", "sample",
           "Transformer", "init_weights", "ColumnParallelLinear", "RowParallelLinear", "TPGroup", "shard_state_dict"]
