"""The filesystem fsspec opens ``s3://`` with (`tasks.data.storage` registers it, imported on first use)."""

from typing import Any

import aiobotocore.session
import s3fs
from botocore.handlers import add_expect_header


class S3FileSystem(s3fs.S3FileSystem):
    """s3fs whose own retry loop makes as many tries as botocore's configuration says (`S3Settings.attempts`).

    s3fs retries a timed-out call five times on top of botocore's tries; bounded by the same setting, a stalled
    endpoint fails in `attempts` x `attempts` x `read_timeout` seconds wherever fsspec opens ``s3://`` (our
    code, zarr, xarray, in this process and in Dask workers, which import `tasks.data.storage` with the tasks).

    Uploads send their body at once, without botocore's `Expect: 100-continue`: aiohttp waits for the
    "100 Continue" without any timeout, so a put to an endpoint that stopped answering would hang for good;
    sent whole, its answer is waited for `read_timeout` like any other.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tries = ((kwargs.get("config_kwargs") or {}).get("retries") or {}).get("total_max_attempts")
        if tries is not None:
            self.retries = tries

    async def set_session(self, refresh: bool = False, kwargs: dict[str, Any] | None = None) -> Any:
        """s3fs's client, made from a session without the `Expect: 100-continue` header (kept for refreshes)."""
        if self.session is None:
            self.session = aiobotocore.session.AioSession(**self.kwargs)
            self.session.unregister("before-call.s3", add_expect_header)
            self._session_is_owned = False  # as if given: s3fs would replace its own with one sending the header
        return await super().set_session(refresh, kwargs or {})
