"""Small tables a person reads at a glance: a Prefect table artifact in a run, log lines elsewhere."""

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.logs import logger
from tasks.progress import in_prefect_run


def report_table(key: str, title: str, rows: list[dict[str, Any]]) -> None:
    """Publish `rows` as a table artifact named `key` (lowercase, digits, dashes) or log them."""
    if in_prefect_run():
        create_table_artifact(rows, key=key, description=title, _sync=True)  # also from async tasks
        return
    log = logger()
    log.info("%s", title)
    for row in rows:
        log.info("  %s", " | ".join(str(v) for v in row.values()))


def report_markdown(key: str, title: str, text: str) -> None:
    """Publish `text` as a markdown artifact named `key` in a Prefect run, or log it."""
    if in_prefect_run():
        create_markdown_artifact(text, key=key, description=title, _sync=True)
        return
    logger().info("%s\n%s", title, text)
