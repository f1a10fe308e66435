"""Package declarations: one signature feeds the flow's parameters and the CLI (nothing written twice)."""

import inspect
from pathlib import Path
from typing import Literal

import pytest

from blocks.s3 import S3Block
from eoflows.cli.step import step_command
from eoflows.package import OutputDir, Package, Role, StagedDir, Step
from flows.build import package_flow
from tasks.cwl.export import CwlOptions, export
from tasks.s2_indices import S2_INDICES


def fetch(url: str, output: OutputDir, storage: S3Block | None = None) -> Path:
    """Fetch something.

    Args:
        url: Where it is.
        output: Folder to write into.
        storage: S3 settings.
    """
    return output


def smooth(input: StagedDir, output: OutputDir, sigma: float = 1.5, mode: Literal["a", "b"] = "a") -> Path:
    """Smooth it.

    Args:
        input: The fetched folder.
        output: Folder to write into.
        sigma: Width of the kernel, in pixels.
        mode: Edge mode.
    """
    return output


def publish(input: StagedDir, target: str = "here") -> str:
    """Publish it.

    Args:
        input: The smoothed folder.
        target: Where to publish.
    """
    return target


def toy(compute: Step) -> Package:
    return Package("toy", "Toy", "A toy package.", Step("fetch", fetch), compute, Step("publish", publish))


def test_a_new_step_parameter_reaches_the_flow_the_cli_and_the_cwl() -> None:
    package = toy(Step("smooth", smooth))
    flow = package_flow(package)
    schema = flow.parameters.model_dump()["properties"]
    assert schema["sigma"]["default"] == 1.5 and schema["sigma"]["description"] == "Width of the kernel, in pixels."
    assert schema["mode"]["enum"] == ["a", "b"]
    assert set(schema) == {"url", "sigma", "mode", "storage", "target"}  # folders are wiring, not parameters
    assert schema["storage"]["description"].startswith("Name of a saved 'eoflows-s3-storage' block")
    cli = inspect.signature(step_command(package.step("smooth")))
    assert list(cli.parameters) == ["input", "output", "sigma", "mode"]
    assert cli.parameters["sigma"].default == 1.5
    assert "storage" not in inspect.signature(step_command(package.step("fetch"))).parameters
    graph = export(package, CwlOptions(mode="full"))["$graph"]
    workflow = {i["id"]: i for i in graph[0]["inputs"]}
    assert workflow["sigma"]["default"] == 1.5 and workflow["sigma"]["type"] == "double"
    assert workflow["sigma"]["doc"] == "Width of the kernel, in pixels."
    assert workflow["mode"]["type"]["symbols"] == ["a", "b"]
    tool = next(p for p in graph if p["id"] == "toy-smooth")
    sigma = next(i for i in tool["inputs"] if i["id"] == "sigma")
    assert sigma["inputBinding"] == {"prefix": "--sigma"} and tool["baseCommand"] == [
        "eoflows",
        "step",
        "toy",
        "smooth",
    ]


def test_roles_come_from_annotations() -> None:
    roles = {p.name: p.role for p in S2_INDICES.step("compute").params}
    assert roles == {"input": Role.STAGED, "output": Role.OUTPUT, "runtime": Role.RUNTIME, "products": Role.INPUT,
                     "strict": Role.INPUT, "encoding": Role.INPUT, "storage": Role.SETTINGS,
                     "dask": Role.SETTINGS}  # fmt: skip
    assert [p.name for p in S2_INDICES.params] == ["item", "storage", "products", "strict", "encoding", "dask",
                                                   "destination", "run_id"]  # fmt: skip
    assert [p.name for p in S2_INDICES.params if p.writable] == ["destination"]  # a folder the step writes into


def test_conflicting_declarations_are_refused() -> None:
    def other(input: StagedDir, output: OutputDir, sigma: int = 2) -> Path:
        """Other.

        Args:
            input: In.
            output: Out.
            sigma: Another sigma.
        """
        return output

    with pytest.raises(TypeError, match="parameter 'sigma' is declared differently by two steps"):
        Package("bad", "Bad", "Bad.", Step("fetch", fetch), Step("smooth", smooth), Step("other", other))


def test_steps_have_their_own_names() -> None:
    with pytest.raises(TypeError, match="package 'toy': its steps need three names"):
        toy(Step("fetch", smooth))


def test_undocumented_parameters_are_refused() -> None:
    def bare(input: StagedDir, output: OutputDir, k: int = 1) -> Path:
        """No args section."""
        return output

    with pytest.raises(TypeError, match="parameter 'input' of .*bare has no doc"):
        toy(Step("bare", bare))


def test_the_compute_step_is_the_application_package() -> None:
    graph = export(toy(Step("smooth", smooth)), CwlOptions(mode="app"))["$graph"]
    assert [p["id"] for p in graph] == ["toy", "toy-smooth"]
