"""``python -m refqt`` runs the command line (see :mod:`refqt.cli`)."""

import sys

from refqt.cli import main

sys.exit(main())
