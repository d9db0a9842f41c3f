"""Entry point: ``python main.py [--search] -f CONFIG.json -a ALGORITHM -o OUTPUT_DIR``."""

import sys

from nnabla_nas.cli import main

if __name__ == "__main__":
    sys.exit(main())
