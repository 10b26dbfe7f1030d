"""neurovision: zero-shot EEG-to-image retrieval on THINGS-EEG2 as a DVC pipeline.

Importing the package (or any module in it) does no I/O and changes no global state.
"""

__version__ = "0.1.0"
