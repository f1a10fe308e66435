"""Settings of the steps and flows (S3 storage, Dask, Calrissian), as plain pydantic models: no Prefect needed.

A step reads its settings from the environment (`S3Settings.from_env()`: the standard AWS_* variables;
`DaskSettings.from_env()`: the dask-gateway configuration, Calrissian's DASK_CLUSTER, DASK_SCHEDULER_ADDRESS), and
a flow from a saved Prefect block: each settings class has a block class in `blocks/` (`blocks.block_class`), a
subclass with the same fields that Prefect saves and the UI edits. Step commands (what CWL tools run) so start
without importing Prefect.

```python
from eoflows.settings import S3Settings

S3Settings.from_env().s3fs_options()
```
"""

from eoflows.settings.base import Settings
from eoflows.settings.calrissian import CalrissianSettings
from eoflows.settings.dask_cluster import DaskSettings
from eoflows.settings.s3 import S3Settings

__all__ = ["CalrissianSettings", "DaskSettings", "S3Settings", "Settings"]
