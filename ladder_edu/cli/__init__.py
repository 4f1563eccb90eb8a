"""The ``ladder-edu`` command line: ``main`` and the parser; one module per command group."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
