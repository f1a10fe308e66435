"""The filesystem fsspec opens ``s3://`` with (`tasks.data.storage` registers it, imported on first use)."""

from typing import Any

import s3fs


class S3FileSystem(s3fs.S3FileSystem):
    """s3fs whose own retry loop makes as many tries as botocore's configuration says (`S3Settings.attempts`).

    s3fs retries a timed-out call five times on top of botocore's tries; bounded by the same setting, a stalled
    endpoint fails in `attempts` x `attempts` x `read_timeout` seconds wherever fsspec opens ``s3://`` (our
    code, zarr, xarray, in this process and in Dask workers, which import `tasks.data.storage` with the tasks).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tries = ((kwargs.get("config_kwargs") or {}).get("retries") or {}).get("total_max_attempts")
        if tries is not None:
            self.retries = tries
