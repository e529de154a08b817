"""`python -m livc` runs the command line."""

import sys

from livc.compiler.cli import main

sys.exit(main())
