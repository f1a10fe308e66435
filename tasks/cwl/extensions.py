"""What cwltool is told when eoflows checks and runs CWL: extension schemas and the eoap string formats.

cwltool accepts one extension schema per CWL version; eoflows gives it cwltool's own extensions (for
`cwltool:Secrets`) plus the record of `calrissian:DaskGatewayRequirement`: the five fields Calrissian reads,
each an int/string or an expression, all required, nothing else allowed (a misspelt `clusterMaxCore` fails,
as it would silently fall back to a plain pod in Calrissian).

Packages wrapped by eoap-cwlwrap import the eoap string-format schema (`STRING_FORMAT`, whose `URI` type
carries stage-in and stage-out references). eoflows' cwltool answers that URL with the same types from here,
so wrapped packages check and run offline; every other URL is fetched as usual.

```python
from tasks.cwl.extensions import cwltool_main
cwltool_main(["--enable-ext", "--validate", "wrapped.cwl"])
```
"""

import time
import urllib.parse
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag

import yaml
from schema_salad.fetcher import DefaultFetcher

if TYPE_CHECKING:
    from blocks.s3 import S3Block
    from tasks.cwl.cwltool_jobs import JobHooks

CALRISSIAN = "https://calrissian-cwl.github.io/schema#"
DASK_CLASS = f"{CALRISSIAN}DaskGatewayRequirement"
CWLTOOL_SCHEMA = "http://commonwl.org/cwltool"
STRING_FORMAT = "https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml"
URI = f"{STRING_FORMAT}#URI"
#: The record types of the eoap string-format schema: each holds its string in a `value` field.
STRING_FORMATS = ("Date", "DateTime", "Duration", "Email", "Hostname", "IDNEmail", "IDNHostname", "IPv4", "IPv6",
                  "IRI", "IRIReference", "Password", "JsonPointer", "RelativeJsonPointer", "UUID", "URI",
                  "URIReference", "URITemplate", "Time")  # fmt: skip


def _dask_record() -> dict[str, Any]:
    def field(kind: str, doc: str) -> dict[str, Any]:
        return {"type": [kind, "cwl:Expression"], "doc": doc}

    return {
        "name": DASK_CLASS,
        "type": "record",
        "extends": "cwl:ProcessRequirement",
        "inVocab": False,
        "doc": "A Dask cluster from the Dask Gateway that Calrissian was started with (--dask-gateway-url).",
        "fields": {
            "class": {"type": "string", "jsonldPredicate": {"_id": "@type", "_type": "@vocab"}},
            "workerCores": field("int", "Cores per Dask worker."),
            "workerCoresLimit": field("int", "Core limit per Dask worker."),
            "workerMemory": field("string", "Memory per Dask worker, an integer and a unit (4G)."),
            "clusterMaxCores": field("int", "Cores of the whole cluster at most."),
            "clusterMaxMemory": field("string", "Memory of the whole cluster at most (16G)."),
        },
    }


def register_extensions() -> None:
    """Teach cwltool (this process) cwltool's extensions plus `calrissian:DaskGatewayRequirement`."""
    from cwltool.process import supportedProcessRequirements, use_custom_schema

    for version, source in (("v1.0", "extensions.yml"), ("v1.1", "extensions-v1.1.yml"),
                            ("v1.2", "extensions-v1.2.yml")):  # fmt: skip
        schema = yaml.safe_load(files("cwltool").joinpath(source).read_text("utf-8"))
        schema["$graph"].append(_dask_record())
        use_custom_schema(version, CWLTOOL_SCHEMA, yaml.safe_dump(schema))
    if DASK_CLASS not in supportedProcessRequirements:
        supportedProcessRequirements.append(DASK_CLASS)


def _string_format_schema() -> str:
    """The eoap string-format schema's types, as YAML."""
    return yaml.safe_dump([{"type": "record", "name": name, "doc": f"A string of format {name}.",
                            "fields": [{"name": "value", "type": "string", "doc": f"The {name} string."}]}
                           for name in STRING_FORMATS])  # fmt: skip


class LocalSchemas(DefaultFetcher):
    """schema-salad's fetcher, the eoap string-format schema answered locally (cwltool `fetcher_constructor`)."""

    def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
        """The text at `url`; the string-format schema from here."""
        return _string_format_schema() if url == STRING_FORMAT else super().fetch_text(url, content_types)

    def check_exists(self, url: str) -> bool:
        """Whether `url` exists; the string-format schema and its types do."""
        return urldefrag(url).url == STRING_FORMAT or super().check_exists(url)


FETCH_TIMEOUT_S = 20.0  # a CWL document read over HTTP: the longest wait for an answer, and for all of it
FETCH_MAX_BYTES = 4 * 2**20


def http_text(url: str, timeout: float = FETCH_TIMEOUT_S, limit: int = FETCH_MAX_BYTES) -> str:
    """The CWL document at an http(s) `url`, read within `timeout` seconds and `limit` bytes, else an InputError."""
    import httpx

    from eoflows.errors import InputError

    deadline = time.monotonic() + timeout
    data = bytearray()
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise InputError(f"CWL document {url!r}: larger than {limit / 2**20:g} MiB; refused")
                if time.monotonic() > deadline:
                    raise InputError(f"CWL document {url!r}: not read within {timeout:g} s; refused")
    except httpx.HTTPStatusError as exc:
        raise InputError(f"CWL document {url!r}: HTTP {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise InputError(f"CWL document {url!r}: cannot read it ({type(exc).__name__}: {exc})") from None
    return data.decode("utf-8", "replace")


def remote_fetcher(storage: "S3Block | None") -> type[LocalSchemas]:
    """A fetcher of `LocalSchemas` that also reads s3:// documents (with `storage`), and joins s3:// references.

    `run: tool.cwl` in s3://bucket/wf.cwl is s3://bucket/tool.cwl: the standard library joins relative URLs only
    for the schemes it lists, so s3 is added to them.
    """
    from tasks.data.stac_io import read_bytes
    from tasks.data.storage import filesystem

    for schemes in (urllib.parse.uses_relative, urllib.parse.uses_netloc):
        if "s3" not in schemes:
            schemes.append("s3")

    class S3Fetcher(LocalSchemas):
        def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
            if url.startswith("s3://"):
                return read_bytes(urldefrag(url).url, storage, "CWL document").decode()
            if url.startswith(("http://", "https://")) and urldefrag(url).url != STRING_FORMAT:
                return http_text(urldefrag(url).url)
            return super().fetch_text(url, content_types)

        def check_exists(self, url: str) -> bool:
            if url.startswith("s3://"):
                fs, path = filesystem(urldefrag(url).url, storage)
                return fs.exists(path)
            return super().check_exists(url)

    return S3Fetcher


def cwltool_main(argv: list[str], hooks: "JobHooks | None" = None, **kwargs: Any) -> int:
    """cwltool's `main` with eoflows' extensions known and the string-format schema local; its exit status.

    `hooks` (tasks.cwl.cwltool_jobs) make the processes cwltool runs and name their jobs, so that each job is
    followed as it runs.
    """
    from cwltool.context import LoadingContext, RuntimeContext
    from cwltool.main import arg_parser, main

    args = vars(arg_parser().parse_args(argv))
    context = LoadingContext(args)
    context.fetcher_constructor = LocalSchemas
    if hooks is not None:
        context.construct_tool_object = hooks.make_tool
        runtime = RuntimeContext(args)  # what cwltool makes of the arguments when given none, plus the names
        runtime.workflow_job_step_name_callback = hooks.names
        kwargs["runtimeContext"] = runtime
    return main(argv, loadingContext=context, custom_schema_callback=register_extensions, **kwargs)
