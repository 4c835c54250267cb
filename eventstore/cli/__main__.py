"""``python -m eventstore.cli``: the ``eventstore`` command without its console script."""

import sys

from eventstore.cli.main import main

sys.exit(main())
