"""Watch Kubernetes objects until something is found: the watch resumed when it expires, polled when it fails.

The rules every watch of eoflows follows (the Calrissian Job, its step pods):
- a watch that expires (410 Gone) is started again: the server sends every object again, as ADDED;
- a watch that fails otherwise is retried, three times; then the objects are listed every `poll_seconds`;
- a watch that is not allowed (403) is not retried: the objects are listed instead at once.

```python
found = await watch_until(batch.list_namespaced_job, "eoap", "Job x", 5.0, on_event,
                          field_selector="metadata.name=x")
```
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tasks.reporting import logger

T = TypeVar("T")
Handler = Callable[[str, Any], Awaitable[T | None]]


async def _watched(list_call: Callable[..., Any], ns: str, what: str, handle: Handler[T],
                   selectors: dict[str, str]) -> tuple[T | None, str | None]:  # fmt: skip
    """(what `handle` found, None), or (None, why the watch must be polled instead) once watching keeps failing."""
    from kubernetes_asyncio import watch
    from kubernetes_asyncio.client.exceptions import ApiException

    log, failures = logger(), 0
    while failures < 3:
        try:
            async with watch.Watch() as stream:
                async for event in stream.stream(list_call, ns, **selectors):
                    if (found := await handle(event["type"], event["object"])) is not None:
                        return found, None
        except ApiException as exc:
            if exc.status == 410:
                log.info("Watch of %s expired (410 Gone); resuming", what)
                continue
            if exc.status == 403:
                return None, f"not allowed to watch ({exc.reason})"
            failures += 1
            log.warning("Watch of %s failed (%s); retrying", what, exc.reason)
        except (TimeoutError, OSError, ValueError) as exc:
            failures += 1
            log.warning("Watch of %s failed (%s); retrying", what, exc)
    return None, "watching keeps failing"


async def watch_until(list_call: Callable[..., Any], ns: str, what: str, poll_seconds: float, handle: Handler[T],
                      **selectors: str) -> T:  # fmt: skip
    """Feed `handle` each (event type, object) of `list_call` in `ns` until it returns something; return that.

    `what` names the objects in log lines; `selectors` are the call's field/label selectors.
    """
    found, why = await _watched(list_call, ns, what, handle, selectors)
    if why is None:
        return found  # type: ignore[return-value]
    logger().warning("Watch of %s: %s; listing every %g s instead", what, why, poll_seconds)
    while True:
        for item in (await list_call(ns, **selectors)).items:
            if (found := await handle("MODIFIED", item)) is not None:
                return found
        await asyncio.sleep(poll_seconds)
