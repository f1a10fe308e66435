"""Application package declarations: the steps are typed functions, the package adds what no signature holds.

A step is a plain function whose signature and Google-style docstring say everything about its inputs::

    def compute_indices(input: StagedDir, output: OutputDir, products: list[Product] = ALL,
                        storage: S3Settings | None = None) -> Path:
        '''Compute ...

Args:
            input: ...
        '''

Parameters annotated `StagedDir` receive the previous step's folder, `OutputDir` the folder the step
writes (the CWL ``runtime.outdir``), a parameter typed `Runtime` what the step may use from where it runs
(`eoflows.runtime`), and parameters typed with a settings class (such as `S3Settings`) come from the
environment or a saved block, never from the command line (their doc is the settings class's `argument_doc`
unless the step gives one). Every other parameter is a user input: the Prefect flow, the CLI and the CWL
export all derive theirs from it (`with_signature` dresses their functions), so a new parameter is one edit.

A package is three steps, as an EO application package: `stage_in` (references -> a staged folder),
`compute` (the application itself: what the OGC app package exports) and `stage_out` (publish).
"""

import inspect
import types
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin, get_type_hints

import docstring_parser

from eoflows import IMAGE
from eoflows.runtime import Runtime

if TYPE_CHECKING:
    from eoflows.settings import Settings


class Role(Enum):
    """What a step parameter is, beyond its type."""

    INPUT = "input"  # a user input: flow parameter, CLI option, CWL input
    STAGED = "staged"  # the folder written by the previous step
    OUTPUT = "output"  # the folder this step writes into
    SETTINGS = "settings"  # connection settings: a block in flows, the environment in CLI and CWL
    RUNTIME = "runtime"  # what the step may use from where it runs (`eoflows.runtime.Runtime`)


class Writable:
    """`Annotated` metadata of a `str` input naming a folder (or s3:// prefix) that the step writes into.

    Flows and the CLI take it as text. The CWL export also takes a `Directory` there, mounted writable and
    written in place: a container sees no host folder it is not given.
    """


StagedDir = Annotated[Path, Role.STAGED]
OutputDir = Annotated[Path, Role.OUTPUT]
Destination = Annotated[str, Writable]


@dataclass(frozen=True)
class Resources:
    """CPU cores and RAM (MiB) a step asks for: (min, max), as CWL `ResourceRequirement` and Kubernetes."""

    cores: tuple[int, int] = (1, 1)
    ram_mb: tuple[int, int] = (1024, 1024)


@dataclass(frozen=True)
class DaskSizes:
    """Dask Gateway cluster a step asks for (the fields of Calrissian's `DaskGatewayRequirement`).

    The defaults are what the Dask steps of eoflows ask: workers of 1 core (2 at most) and 4 GB, up to 8 cores.
    """

    worker_cores: int = 1
    worker_cores_limit: int = 2
    worker_memory: str = "4G"
    cluster_max_cores: int = 8
    cluster_max_memory: str = "32G"


@dataclass(frozen=True)
class Param:
    """One parameter of a step, as read from its signature and docstring."""

    name: str
    annotation: Any  # the type without `Annotated` metadata
    default: Any  # `inspect.Parameter.empty` when required
    doc: str
    role: Role
    writable: bool = False  # a folder the step writes into (`Destination`)

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is inspect.Parameter.empty


def settings_class(annotation: Any) -> "type[Settings] | None":
    """The settings class of a settings annotation (``S3Settings | None`` -> `S3Settings`), else None."""
    from eoflows.settings import Settings  # pydantic: when steps are declared, not when the CLI starts

    candidates = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, Settings)), None)


#: Roles of the parameters that are wiring, not user inputs: never a flow parameter, CLI option or CWL input.
WIRING = (Role.STAGED, Role.OUTPUT, Role.RUNTIME)


def _role(hint: Any) -> tuple[Role, Any, bool]:
    """The role, base type and writable mark of a parameter's type hint."""
    if get_origin(hint) is Annotated:
        base, *meta = get_args(hint)
        return next((m for m in meta if isinstance(m, Role)), Role.INPUT), base, Writable in meta
    if hint is Runtime:
        return Role.RUNTIME, hint, False
    return (Role.SETTINGS if settings_class(hint) else Role.INPUT), hint, False


def _default_doc(role: Role, hint: Any) -> str | None:
    """The doc of a parameter its step leaves undocumented: a settings class's `argument_doc`; the runtime's none."""
    if role is Role.RUNTIME:
        return ""
    cls = settings_class(hint) if role is Role.SETTINGS else None
    return cls.argument_doc if cls is not None and cls.argument_doc else None


def summary(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())


def with_signature(
    body: Callable[..., Any], name: str, params: Sequence[Param], summary_line: str, returns: Any = Any
) -> Callable[..., Any]:
    """`body` (called with keyword arguments) dressed as a function of the keyword-only `params`.

    Its name, signature, annotations and Google-style docstring are what Prefect reads into a flow's parameter
    schema and cyclopts into a command's options and help.
    """
    body.__name__ = body.__qualname__ = name.replace("-", "_")
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=p.annotation)
            for p in params
        ],
        return_annotation=returns,
    )
    body.__annotations__ = {**{p.name: p.annotation for p in params}, "return": returns}
    args = "\n".join(f"    {p.name}: {p.doc}" for p in params)
    body.__doc__ = f"{summary_line}\n\nArgs:\n{args}\n"
    return body


@dataclass(frozen=True)
class Step:
    """One step of a package: a typed function plus its resources, Dask needs and network access.

    In a flow, a step with `dask` sizes places its windows on the flow's Dask task runner (`flows.build`).
    """

    name: str
    run: Callable[..., Any]
    resources: Resources = field(default_factory=Resources)
    dask: DaskSizes | None = None
    network: bool = False
    #: A context manager taking some of the step's inputs and settings (by name), that a flow enters before its
    #: first step and leaves after its last: what the step will need, checked and held before any work (the
    #: stage-out step: the destination checked and its run folder claimed).
    hold: Callable[..., AbstractContextManager[Any]] | None = None
    #: The step sends its final output files to the destination the flow holds while it computes, where it can
    #: (`Runtime.uploads`: a flow publishing to S3); only the step whose output stage-out publishes can.
    uploads_early: bool = False

    @cached_property
    def params(self) -> tuple[Param, ...]:
        """All parameters of the step function, in signature order."""
        hints = get_type_hints(self.run, include_extras=True)
        docs = {a.arg_name: a.description or "" for a in docstring_parser.parse(inspect.getdoc(self.run) or "").params}
        params = []
        for p in inspect.signature(self.run).parameters.values():
            role, base, writable = _role(hints[p.name])
            doc = docs.get(p.name) or _default_doc(role, base)
            if doc is None:
                raise TypeError(f"step {self.name!r}: parameter {p.name!r} of {self.run.__qualname__} has no doc")
            params.append(Param(p.name, base, p.default, " ".join(doc.split()), role, writable))
        return tuple(params)

    def by_role(self, role: Role) -> tuple[Param, ...]:
        """The parameters of the step that have `role`."""
        return tuple(p for p in self.params if p.role is role)

    @property
    def doc(self) -> str:
        """One-line description of the step (first paragraph of its docstring)."""
        return summary(self.run.__doc__)


@dataclass(frozen=True)
class Feed:
    """How the `monitor` flow feeds items found by a STAC search to a package's inputs.

    One input: each item runs once (`item`), or each item's asset chosen by the monitor (`url`, with
    `asset=True`). Two inputs: a pre- and a post-event item of one tile, chosen around an event date.
    """

    inputs: tuple[str, ...]
    asset: bool = False

    @property
    def pair(self) -> bool:
        """True when the package takes a pre-/post-event pair."""
        return len(self.inputs) == 2


@dataclass(frozen=True)
class Package:
    """An application package: stage-in, compute and stage-out, each consuming the previous one's folder."""

    name: str
    label: str
    description: str
    stage_in: Step
    compute: Step  # the application: what the OGC application package (CWL `app` mode) exports
    stage_out: Step
    image: str = IMAGE
    #: Its version; "" (the default): the version of the distribution declaring its entry point, as discovered.
    version: str = ""
    #: Example values of required inputs, for job templates and docs (never credentials).
    examples: dict[str, Any] = field(default_factory=dict)
    #: How the `monitor` flow feeds it items found by a STAC search (None: it cannot be monitored).
    feed: Feed | None = None
    #: The versions of the eoflows API (`eoflows.API_VERSION`) the package works with, as a PEP 440 specifier
    #: (">=1.0,<2"); "" takes any. Discovery refuses the package when this eoflows does not match.
    api: str = ""

    def __post_init__(self) -> None:
        self.params  # noqa: B018 - fail at import time on conflicting declarations
        names = {p.name for p in self.params}
        if len({s.name for s in self.steps}) < 3:
            raise TypeError(f"package {self.name!r}: its steps need three names (CLI commands, CWL tool ids)")
        if self.feed and not set(self.feed.inputs) <= names:
            raise TypeError(f"package {self.name!r}: feed inputs {self.feed.inputs} are not all parameters")
        if self.stage_in.uploads_early or self.stage_out.uploads_early:
            raise TypeError(f"package {self.name!r}: only the compute step can upload early (its output is what "
                            "stage-out publishes)")  # fmt: skip

    @property
    def steps(self) -> tuple[Step, Step, Step]:
        """The steps in the order they run."""
        return self.stage_in, self.compute, self.stage_out

    @cached_property
    def params(self) -> tuple[Param, ...]:
        """User inputs and settings of all steps; one entry per name (steps may share a parameter)."""
        merged: dict[str, Param] = {}
        for step in self.steps:
            for p in step.params:
                if p.role in WIRING:
                    continue
                seen = merged.setdefault(p.name, p)
                if (seen.annotation, seen.default, seen.role) != (p.annotation, p.default, p.role):
                    raise TypeError(f"package {self.name!r}: parameter {p.name!r} is declared differently by two steps")
        return tuple(merged.values())

    def step(self, name: str) -> Step:
        """The step called `name`."""
        return next(s for s in self.steps if s.name == name)
