"""Bitstream coding: the one-file container (and, to come, sorting, entropy models and rANS)."""
