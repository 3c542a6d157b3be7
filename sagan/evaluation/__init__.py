"""Evaluation: feature extractors, metrics (pure NumPy/SciPy) and the glue that scores samples."""
