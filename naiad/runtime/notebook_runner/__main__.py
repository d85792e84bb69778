"""What a notebook job runs: ``python .../notebook_runner/__main__.py NOTEBOOK.ipynb``.

A script of its own folder, so the launcher runs it as it runs any script (and under
torchrun), and nothing beside it shadows a module the notebook imports.
"""

import sys

from naiad.runtime.notebooks import main

if __name__ == "__main__":
    sys.exit(main())
