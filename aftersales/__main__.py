import sys

from aftersales.cli.main import main

sys.exit(main())
