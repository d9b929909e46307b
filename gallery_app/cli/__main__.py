"""`python -m gallery_app.cli` is the same as the `gallery-app` command."""

import sys

from gallery_app.cli import main

sys.exit(main())
