import sys

from callpop.cli import main

sys.exit(main())
