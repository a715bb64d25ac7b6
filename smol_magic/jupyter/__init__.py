"""Everything that needs IPython, ipykernel or ipywidgets: the magic, the kernel executor, the widgets."""
