"""`run-cwl`: run any CWL application package (or an eoflows package by name) on Calrissian or with cwltool.

```
eoflows cwl run s2-indices-full.cwl#s2-indices job.yml --runner calrissian --calrissian eoap
prefect deployment run 'run-cwl/local' -p cwl=s2-indices -p inputs='{"item": "...", "destination": "..."}'
```
"""

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

import yaml
from prefect import flow
from pydantic import Field

from blocks import credential_inputs, saved_or_env
from blocks.calrissian import CalrissianBlock
from blocks.s3 import S3Block
from eoflows import __version__
from eoflows.errors import InputError
from flows.work import flow_work_folder
from tasks.cwl.cwltool_runner import run_cwl_with_cwltool
from tasks.cwl.documents import CwlDocument, check_loads, entry_inputs, fetch_cwl, secret_inputs
from tasks.data.stac_io import read_bytes
from tasks.data.staging import default_run_id
from tasks.data.storage import absolute_href
from tasks.remote.calrissian import run_cwl_on_calrissian


def _document(cwl: str | dict[str, Any], folder: Path, storage: S3Block) -> CwlDocument:
    from eoflows.discovery import installed

    if isinstance(cwl, dict):  # the document itself (a deployed OGC process gives its packed document)
        path = folder / "package.cwl"
        path.write_text(yaml.safe_dump(cwl, sort_keys=False))
        return fetch_cwl(f"{path}#main" if "$graph" in cwl else str(path), folder / "packed", storage)
    packages = installed()
    if cwl in packages:  # export the package on the fly (full mode: item URLs in, catalog URI out)
        from tasks.cwl.export import CwlOptions, export, to_yaml

        path = folder / f"{cwl}.cwl"
        path.write_text(to_yaml(export(packages[cwl], CwlOptions(mode="full"))))
        document = CwlDocument(path, cwl)
        check_loads(document, cwl)
        return document
    return fetch_cwl(cwl, folder, storage)


def _inputs(inputs: dict[str, Any] | str, storage: S3Block) -> dict[str, Any]:
    if isinstance(inputs, dict):
        return inputs
    location = absolute_href(inputs)
    try:
        loaded = yaml.safe_load(read_bytes(location, storage, "CWL inputs"))
    except yaml.YAMLError as exc:
        raise InputError(f"CWL inputs {inputs!r}: not YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(loaded, dict):
        raise InputError(f"CWL inputs {inputs!r}: expected a mapping of input ids to values")
    base = location if "://" in location else Path(location).as_uri()
    return {k: resolved_files(v, base) for k, v in loaded.items()}


def resolved_files(value: Any, base: str) -> Any:
    """`value` with the relative `path`/`location` of its File and Directory objects made absolute against `base`.

    As cwltool does: a job file's relative paths are relative to the job file, wherever the run happens.
    """
    if isinstance(value, list):
        return [resolved_files(v, base) for v in value]
    if not isinstance(value, dict):
        return value
    found = {k: resolved_files(v, base) for k, v in value.items()}
    if found.get("class") in ("File", "Directory"):
        for key in ("location", "path"):
            ref = found.get(key)
            if isinstance(ref, str) and "://" not in ref and not ref.startswith("/"):
                joined = urljoin(base, ref)
                if key == "path" and joined.startswith("file://"):
                    found["path"] = url2pathname(urlparse(joined).path)
                else:  # a URL: cwltool takes it as a location
                    found.pop(key)
                    found["location"] = joined
    return found


#: Credentials are never flow-run parameters: a deployment run that gives them in `inputs` is refused by the
#: server before it stores anything (the flow itself refuses them in a direct call).
NO_CREDENTIALS = {"not": {"type": "object", "anyOf": [{"required": [k]} for k in credential_inputs(S3Block)]}}


@flow(
    name="run-cwl",
    version=__version__,
    description="Run a CWL application package on Calrissian (Kubernetes) or with cwltool.",
)
def run_cwl(
    cwl: str | dict[str, Any],
    inputs: Annotated[dict[str, Any] | str, Field(json_schema_extra=NO_CREDENTIALS)] = {},
    runner: Literal["cwltool", "calrissian"] = "cwltool",
    calrissian: CalrissianBlock | str | None = None,
    storage: S3Block | str | None = None,
    outdir: str = "cwl-results",
    dry_run: bool = False,
    parallel: bool = False,
) -> dict[str, Any]:
    """Run a CWL document and return its outputs.

    Each job of the run (each tool a workflow step runs, each element of a scatter) is a task run of its own,
    named after its step, with its state, log and resources as it runs; a `cwl-timeline` artifact shows them.

    Args:
        cwl: Path, URL or s3:// URI of a CWL document (FILE#id for one process of a $graph), or the name of an
            eoflows package (exported on the fly in full mode), or the document itself (a mapping: what the jobs
            of a process deployed through OGC API - Processes are given).
        inputs: The job's inputs: a mapping, or the path, URL or s3:// URI of a YAML file.
        runner: calrissian (a Kubernetes Job) or cwltool (here, without containers).
        calrissian: A saved 'eoflows-calrissian' block or its name (in the UI: pick one); empty: its defaults,
            in-cluster.
        storage: A saved 'eoflows-s3-storage' block or its name (in the UI: pick one): it reads s3:// documents
            and gives the document's S3 inputs (credentials included, never flow-run parameters); empty: AWS_*
            variables.
        outdir: Folder for cwltool's results (a sub-folder per run: the flow run id).
        dry_run: With calrissian: return the manifests (YAML) without contacting a cluster.
        parallel: With cwltool: run the jobs that are ready at once (cwltool --parallel), as many as the cores
            allow; Calrissian always does.
    """
    s3 = saved_or_env(S3Block, storage, "storage")
    with flow_work_folder("run-cwl") as folder:
        document = _document(cwl, folder, s3)
        content = document.content()
        given = sorted(k for k in secret_inputs(content) if isinstance(inputs, dict) and inputs.get(k))
        if given:
            raise InputError(
                f"inputs {given}: credentials are never flow-run parameters (Prefect keeps those in its database); "
                "give a saved 'eoflows-s3-storage' block (storage) or set them in the worker's environment"
            )
        from tasks.cwl.export import settings_inputs  # cwl-utils: imported when a run needs it

        declared = entry_inputs(content, document.entry)
        values = {**{k: v for k, v in settings_inputs(s3).items() if k in declared}, **_inputs(inputs, s3)}
        if runner == "calrissian":
            settings = saved_or_env(CalrissianBlock, calrissian, "calrissian")
            # run here, in this thread: a stop signal (flow-run cancellation) ends the loop, which cancels the
            # run and so deletes its Job; Prefect's own loop thread would leave the run going
            return asyncio.run(run_cwl_on_calrissian(document, values, settings, dry_run=dry_run))
        return run_cwl_with_cwltool(document, values, Path(outdir).absolute() / default_run_id(), parallel=parallel)
