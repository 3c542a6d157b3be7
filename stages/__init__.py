"""One entry point per DVC stage: ``python -m stages.<name>``.

Importing the package first imports TensorFlow without its start-up noise
(:mod:`sagan.quiet`), before any stage's own imports do.
"""

from sagan.quiet import import_tensorflow_quietly

import_tensorflow_quietly()
