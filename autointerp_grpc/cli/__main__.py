"""``python -m autointerp_grpc.cli``: the ``autointerp`` command."""

import sys

try:
    from autointerp_grpc.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command starts: no traceback
    sys.exit(130)

sys.exit(main())
