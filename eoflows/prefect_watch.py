"""A run's Prefect API, watched: when it stops answering, the run stops within seconds and says so in one line.

Prefect's client retries a failed request five times over about a minute, and a run makes many requests (states,
logs, artifacts): a run whose API died would go on for many minutes, then end as a bug. While a run reports to
an API, a thread asks for its health every `PERIOD_S`. After `LOST_AFTER_S` without an answer, it turns off the
client's retries and the logs sent to the API (nothing would take them) and stops the run as Ctrl-C does (a
signal of its own, SIGUSR1, to the main thread, which raises `KeyboardInterrupt` there): the unpublished work is
removed (the claim's rollback, the work folder) and the command ends with `ApiLost`, then at once
(`exit_now`): Prefect's threads would try the lost API for minutes more at exit. Only a block in the main thread
(a command) is watched.

```python
with watched("http://127.0.0.1:4200/api"):
    flow()  # raises ApiLost if the API stops answering meanwhile
```
"""

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from eoflows.errors import RemoteRunError

LOST_AFTER_S = 15.0
PERIOD_S = 1.0


class ApiLost(RemoteRunError):
    """The Prefect API of a run stopped answering, and the run was stopped."""


def answers(url: str, timeout: float) -> str | None:
    """None when the API at `url` answers its health check (any HTTP answer below 500), else why not."""
    import urllib.error
    import urllib.request  # (here: a step command, which imports this module with its exit codes, needs none)

    try:
        urllib.request.urlopen(f"{url}/health", timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        return None if exc.code < 500 else f"HTTP {exc.code}"
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {reason}"
    return None


@contextmanager
def watched(url: str) -> Iterator[None]:
    """Stop the block (in the main thread) if the API at `url` answers nothing for `LOST_AFTER_S`; see the module."""
    from prefect.settings import get_current_settings

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    settings = get_current_settings()  # the run's settings object, which its threads share
    stop, lost = threading.Event(), []

    def watch() -> None:
        answered = time.monotonic()
        while not stop.wait(PERIOD_S):
            why = answers(url, timeout=5.0)  # (a busy server may be slow to answer)
            if why is None:
                answered = time.monotonic()
            elif time.monotonic() - answered >= LOST_AFTER_S and not stop.is_set():
                lost.append(why)
                settings.client.max_retries = 0
                settings.logging.to_api.enabled = False
                signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # (wakes a blocked wait too)
                return

    previous = signal.signal(signal.SIGUSR1, _interrupt)
    thread = threading.Thread(target=watch, name="eoflows-prefect-watch", daemon=True)
    thread.start()
    try:
        yield
    except BaseException as exc:
        if lost:
            _drop_reports()
            raise ApiLost(f"Prefect API {url!r}: no answer for {LOST_AFTER_S:g} s ({lost[0]}); the run was "
                          "stopped, its unpublished work removed") from exc  # fmt: skip
        raise
    finally:
        stop.set()
        signal.signal(signal.SIGUSR1, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _drop_reports() -> None:
    """Give the logs and events still queued for a lost API a moment to fail (their errors before ours)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=2)
    EventsWorker.drain_all(timeout=2)


def exit_now(status: int) -> None:
    """End the process with `status` now, skipping the interpreter's exit, where Prefect's threads try a gone API.

    So end a command whose Prefect API is lost (`ApiLost`), or one stopped once its clean-up is done.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
