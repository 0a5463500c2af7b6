"""GIFStream engine: 4D Gaussian immersive-video capture I/O, rasterisation, training and coding."""

__version__ = "0.1.0"
