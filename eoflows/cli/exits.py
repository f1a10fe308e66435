"""What an `eoflows` command's error becomes: one line on standard error and an exit status, in one place.

- 1: bad input or an unusable location (`EoflowsError`: the message names the input and what is wrong), or a
  stop asked for (SIGTERM, and Ctrl-C: SIGINT);
- 2: a malformed command line (cyclopts' usage errors);
- 3: a bug in eoflows (any other error: its traceback is logged first).
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cyclopts import CycloptsError

from eoflows.errors import EoflowsError, Stopped
from eoflows.prefect_watch import ApiLost

INPUT_ERROR, USAGE_ERROR, INTERNAL_ERROR = 1, 2, 3


def one_line(error: BaseException) -> str:
    """The message of `error` on one line."""
    return " ".join(str(error).split())


@dataclass
class Exit:
    """How the command ended: its exit status (0 unless an error said otherwise), and whether it was stopped.

    Stopped: by a signal, or its Prefect API lost; the process should then end at once (`eoflows.cli.cli`).
    """

    status: int = 0
    stopped: bool = False


@contextmanager
def exit_status(log: logging.Logger) -> Iterator[Exit]:
    """Run the block; an error it raises becomes one line on standard error and the `Exit`'s status."""
    ended = Exit()
    try:
        yield ended
    except CycloptsError as error:
        print(f"eoflows: usage error: {one_line(error)}", file=sys.stderr)
        ended.status = USAGE_ERROR
    except EoflowsError as error:
        print(f"eoflows: error: {one_line(error)}", file=sys.stderr)
        ended.status, ended.stopped = INPUT_ERROR, isinstance(error, Stopped | ApiLost)
    except KeyboardInterrupt:  # Ctrl-C: stopped like SIGTERM (`Stopped`), the clean-up done on the way out
        print("eoflows: error: stopped by signal SIGINT", file=sys.stderr)
        ended.status, ended.stopped = INPUT_ERROR, True
    except Exception as error:  # a bug: the whole traceback, and a status of its own
        log.exception("internal error")
        print(f"eoflows: internal error (a bug in eoflows, traceback above): {type(error).__name__}: "
              f"{one_line(error)}", file=sys.stderr)  # fmt: skip
        ended.status = INTERNAL_ERROR
