"""The outputs of a CWL run as an artifact of its flow run: shown in the UI, read back by the OGC API's results."""

import json
from typing import Any

from tasks.reporting import report_markdown

KEY = "cwl-outputs"


def report_outputs(outputs: dict[str, Any], title: str) -> None:
    """Publish a run's CWL outputs (the JSON object cwltool or Calrissian printed) as the `cwl-outputs` artifact."""
    report_markdown(KEY, title, "```json\n" + json.dumps(outputs, indent=2) + "\n```")


def outputs_of(markdown: str) -> dict[str, Any]:
    """The CWL outputs that `report_outputs` published as `markdown`."""
    return json.loads(markdown.strip().removeprefix("```json").removesuffix("```"))
