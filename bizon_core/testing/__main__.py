"""`python -m bizon_core.testing --bench-records N`: serve benchmark pages (see `server.main`)."""

import sys

from bizon_core.testing.server import main

sys.exit(main())
