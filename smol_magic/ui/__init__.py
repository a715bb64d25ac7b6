"""How a run is shown to people: live widgets in a notebook, plain text elsewhere."""

from .text import TextRenderer

__all__ = ["TextRenderer"]
