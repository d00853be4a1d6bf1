import sys

from zoomsr.cli.main import main

sys.exit(main())
