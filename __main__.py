"""`python -m livc` runs the command line."""

import sys

from livc.cli import main

sys.exit(main())
