"""How a run is shown to people, without Jupyter: static HTML and plain text (the live widgets are in ``jupyter/``)."""

from .text import TextRenderer

__all__ = ["TextRenderer"]
