import sys

from aftersales.cli import main

sys.exit(main())
