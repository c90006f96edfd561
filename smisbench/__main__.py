import sys

from smisbench.cli import main

sys.exit(main())
