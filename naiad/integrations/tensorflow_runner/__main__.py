"""What a TensorFlow job runs: ``python .../tensorflow_runner/__main__.py SCRIPT ARGS...``.

A script of its own folder, so the launcher runs it as it runs any script (and under
torchrun), and nothing beside it shadows a module the job's script imports.
"""

import sys

from naiad.integrations.tensorflow_job import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
