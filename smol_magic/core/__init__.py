"""The agent framework in plain Python: the loop, its memory, models, tools, execution, approval.

Nothing in ``core`` imports Jupyter, the exports or the user interfaces; they
import the core (``tests/test_structure.py`` checks it).
"""
