"""rANS coding of discretised-Gaussian symbols with constriction, vectorised over whole arrays.

A `SymbolWriter` collects groups of symbols in decoding order with their (mu, sigma) in steps and writes them
as one ANS stack (encoded in reverse, so the reader pops them in order). Every group name has one symbol range
[lo, hi] that the header carries (a single-symbol range costs no bits); the reader checks that the stack is
empty at the end.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import BitstreamError


def _model(lo: int, hi: int):
    return constriction.stream.model.QuantizedGaussian(int(lo), int(hi))


class SymbolWriter:
    def __init__(self):
        self.groups: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, name: str, symbols: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> None:
        s = np.asarray(symbols).reshape(-1)
        if len(s):
            self.groups.append((name, s.astype(np.int64), np.asarray(mu, np.float64).reshape(-1),
                                np.asarray(sigma, np.float64).reshape(-1)))

    def ranges(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for name, s, _, _ in self.groups:
            lo, hi = int(s.min()), int(s.max())
            if name in out:
                lo, hi = min(lo, out[name][0]), max(hi, out[name][1])
            out[name] = [lo, hi]
        return out

    def finish(self, ranges: dict[str, list[int]] | None = None) -> tuple[bytes, dict[str, list[int]]]:
        ranges = ranges or self.ranges()
        coder = constriction.stream.stack.AnsCoder()
        for name, s, mu, sigma in reversed(self.groups):
            lo, hi = ranges[name]
            if s.min() < lo or s.max() > hi:
                raise ValueError(f"symbols of {name} outside their declared range [{lo}, {hi}]")
            if lo == hi:
                continue
            coder.encode_reverse(s.astype(np.int32), _model(lo, hi), mu, sigma)
        return coder.get_compressed().astype("<u4").tobytes(), ranges


class SymbolReader:
    def __init__(self, payload: bytes, ranges: dict[str, list[int]], what: str):
        if len(payload) % 4:
            raise BitstreamError(f"{what}: rANS payload of {len(payload)} bytes is not a whole number of 32-bit words")
        self.what, self.ranges = what, ranges
        self.coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, "<u4").astype(np.uint32))

    def read(self, name: str, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        mu = np.asarray(mu, np.float64).reshape(-1)
        if len(mu) == 0:
            return np.zeros(0, np.int64)
        if name not in self.ranges:
            raise BitstreamError(f"{self.what}: the header gives no symbol range for {name!r}")
        lo, hi = self.ranges[name]
        if lo == hi:
            return np.full(len(mu), lo, dtype=np.int64)
        try:
            return self.coder.decode(_model(lo, hi), mu, np.asarray(sigma, np.float64).reshape(-1)).astype(np.int64)
        except BaseException as exc:  # constriction raises its own error types on exhausted or invalid data
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise BitstreamError(f"{self.what}: rANS decoding of {name!r} failed: {exc}") from exc

    def finish(self) -> None:
        if not self.coder.is_empty():
            raise BitstreamError(f"{self.what}: rANS data left over after the last symbol; the stream does not "
                                 "match its header")
