"""The console entry of ``blis`` and ``simulation_worker``: signals first, then the command line.

Installed before anything heavy is imported, so that Ctrl-C during start-up prints one line instead of a traceback,
and SIGTERM unwinds the command like Ctrl-C (``errors.Terminated``): no partial output file, worker processes
stopped, exit 143.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def _on_sigterm(signum: int, frame: object) -> None:
    from .errors import Terminated
    from .processes import stop_children

    stop_children()
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("blis: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except BaseException as exc:  # Terminated during start-up
        if type(exc).__name__ == "Terminated":
            sys.stderr.write("blis: terminated\n")
            sys.exit(EXIT_TERMINATED)
        raise
    cli_main()
