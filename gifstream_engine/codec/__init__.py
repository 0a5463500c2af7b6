"""Bitstream coding: quantisation by the entropy models, 2D sorting, rANS, the octree, the one-file container
and its typed header, GOP and whole-sequence encoder and decoder, and the x265 comparison path."""
