"""The GIFStream model: anchors, feature streams, masks and decoders."""

from .anchors import voxelize
from .config import AnchorValues, DecodeAux, DecodeState, ModelConfig, validate_model
from .gifstream import GIFStreamModel, mlp
from .quantize import MASK_FLOOR, MASK_STEP
from .time_code import time_code

__all__ = ["AnchorValues", "DecodeAux", "DecodeState", "GIFStreamModel", "MASK_FLOOR", "MASK_STEP", "ModelConfig", "mlp", "time_code",
           "validate_model", "voxelize"]
