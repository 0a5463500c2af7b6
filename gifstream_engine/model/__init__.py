"""The GIFStream model: anchors, feature streams, masks and decoders."""

from .gifstream import DecodeState, GIFStreamModel, ModelConfig, voxelize

__all__ = ["DecodeState", "GIFStreamModel", "ModelConfig", "voxelize"]
