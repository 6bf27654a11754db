"""gpic_lab: a Jupyter-first research workbench for GPIC (Giant Permissive Image Corpus).

Importing the package has no side effects; heavy dependencies are imported inside the functions that need them.
"""

__version__ = "0.1.0"
