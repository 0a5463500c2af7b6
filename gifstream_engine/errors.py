"""Error hierarchy. Every message names the file or field at fault and what was expected."""


class GIFStreamError(Exception):
    """Base class of all errors the engine reports to users."""


class CaptureError(GIFStreamError):
    """A capture on disk is missing, malformed or inconsistent."""


class ConfigError(GIFStreamError):
    """A configuration value or command-line option is invalid."""


class RenderError(GIFStreamError):
    """The rasteriser was given inputs it cannot render."""


class BitstreamError(GIFStreamError):
    """A .gifs bitstream is truncated, corrupted, of another format or version, or asked for what it lacks."""


class OutputError(GIFStreamError):
    """An output path cannot be written: a file where a folder is needed or the reverse, no permission, disk full."""


class RunError(GIFStreamError):
    """A run folder is busy (another writer holds its lock), holds a run that must not be replaced, or is damaged."""


class SequenceError(GIFStreamError):
    """A sequence folder (per-frame PLYs) is missing, has gaps, or holds files that are not 3D Gaussians."""


class FrameRangeError(ConfigError):
    """A frame range (`--frames START:STOP`) is malformed or outside the frames of what it selects from."""
