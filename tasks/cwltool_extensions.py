"""cwltool's extension schema, plus Calrissian's `DaskGatewayRequirement`, for checking and running CWL.

cwltool accepts one extension schema per CWL version; eoflows gives it cwltool's own extensions (for
`cwltool:Secrets`) plus the record of `calrissian:DaskGatewayRequirement`: the five fields Calrissian reads,
each an int/string or an expression, all required, nothing else allowed (a misspelt `clusterMaxCore` fails,
as it would silently fall back to a plain pod in Calrissian).
"""

from importlib.resources import files
from typing import Any

import yaml

CALRISSIAN = "https://calrissian-cwl.github.io/schema#"
DASK_CLASS = f"{CALRISSIAN}DaskGatewayRequirement"
CWLTOOL_SCHEMA = "http://commonwl.org/cwltool"


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
