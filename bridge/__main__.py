import sys

from stemstream.bridge.cli.main import main

sys.exit(main())
