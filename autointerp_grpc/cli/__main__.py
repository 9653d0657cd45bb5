"""``python -m autointerp_grpc.cli``: the ``autointerp`` command."""

import sys

from autointerp_grpc.cli import main

sys.exit(main())
