"""`python -m kdedge` is the `kdedge` command."""
import sys

from kdedge.cli import main

sys.exit(main())
