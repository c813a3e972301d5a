"""The package's version (``imgsearch.__version__``; ``imgsearch --version``)."""

__version__ = "0.1.0"
