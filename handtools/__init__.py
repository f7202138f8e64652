"""handtools: 3D hand mesh recovery from images without 3D labels in the target domain."""

__version__ = "0.1.0"
