"""The installed application packages: entry points of the group `eoflows.packages`, and those named for development.

A distribution makes packages known by entry points (``NAME = "module:OBJECT"``, OBJECT a `Package` called
NAME); eoflows' own three are found the same way. While a package is being written it can also be named as
``module:OBJECT`` in `EOFLOWS_PACKAGES` (comma-separated) or with ``eoflows --package module:OBJECT``.

A package that cannot be imported, does not declare a valid `Package`, needs another API version or takes a name
already taken is *broken*: it is listed with a one-line reason naming it and where it comes from, and the others,
the CLI and the flows work on without it (as xarray drops a backend that fails to load).
"""

import dataclasses
import importlib
import os
import re
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from eoflows import API_VERSION
from eoflows.package import Package

GROUP = "eoflows.packages"
ENV = "EOFLOWS_PACKAGES"
BUILT_IN = "eoflows"  # the distribution of the built-in packages
#: Flows of eoflows that are not packages: a package of the same name would take their deployments' names.
RESERVED = ("monitor", "run-cwl")
DEVELOPMENT_VERSION = "0+dev"  # the version of a package named for development that gives none
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class Source:
    """Where a package is declared: an entry point of a distribution, or a `module:OBJECT` given for development."""

    target: str  # module:OBJECT
    name: str = ""  # the entry point's name ("" for a development source: the package's own name)
    distribution: str = ""  # the distribution declaring the entry point, with its version
    built_in: bool = False
    version: str = ""  # the distribution's version ("" for a development source)

    @property
    def origin(self) -> str:
        """Where the package comes from, for a person."""
        if self.built_in:
            return f"built-in ({self.distribution})"
        return self.distribution or f"{ENV} or --package"

    def __str__(self) -> str:
        if self.name:
            return f"entry point {self.name} = {self.target} of {self.distribution}"
        return f"{self.target}, given by {ENV} or --package"


@dataclass(frozen=True)
class Found:
    """A package as discovered: its declaration, or why it is broken."""

    source: Source
    package: Package | None = None
    error: str = ""

    @property
    def name(self) -> str:
        """The package's name (the entry point's when it could not be loaded)."""
        return self.package.name if self.package else self.source.name or self.source.target

    @property
    def ok(self) -> bool:
        """True when the package loaded and may run."""
        return self.package is not None and not self.error


def development_sources(value: str | None = None) -> list[Source]:
    """The `module:OBJECT` sources named in `value` (default `EOFLOWS_PACKAGES`), comma-separated."""
    text = os.environ.get(ENV, "") if value is None else value
    return [Source(part.strip()) for part in text.split(",") if part.strip()]


def _entry_point_source(point: EntryPoint) -> Source:
    dist = point.dist
    label = f"{dist.name} {dist.version}" if dist else "an unknown distribution"
    built_in = bool(dist and dist.name == BUILT_IN)
    return Source(point.value, point.name, label, built_in, dist.version if dist else "")


def sources() -> list[Source]:
    """Every declared source: the entry points (built-in first), then the development ones."""
    points = sorted(entry_points(group=GROUP), key=lambda p: (not (p.dist and p.dist.name == BUILT_IN), p.name))
    unique = {(p.name, p.value): p for p in points}  # an editable install may list a distribution twice
    return [_entry_point_source(p) for p in unique.values()] + development_sources()


def _api_mismatch(package: Package) -> str:
    """Why this eoflows cannot run `package` (its API range), or ""."""
    if not package.api:
        return ""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        wanted = SpecifierSet(package.api)
    except InvalidSpecifier:
        return f"its api {package.api!r} is not a version range (write it as '>=1.0,<2')"
    if API_VERSION in wanted:
        return ""
    return f"it needs eoflows API {package.api}; this eoflows has API {API_VERSION}"


def load(source: Source) -> Found:
    """Import and check one source; never raises for what the package's code does."""
    module, _, attribute = source.target.partition(":")
    if not module or not attribute:
        return Found(source, error=f"{source}: not of the form module:OBJECT")
    try:
        obj = getattr(importlib.import_module(module), attribute)
    except Exception as exc:  # a package's import may fail in any way: it is reported, never raised
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return Found(source, error=f"{source}: cannot be loaded ({type(exc).__name__}: {reason})")
    if not isinstance(obj, Package):
        return Found(source, error=f"{source}: is a {type(obj).__name__}, not an eoflows Package")
    if not obj.version:  # the distribution's; a package named for development has none yet
        obj = dataclasses.replace(obj, version=source.version or DEVELOPMENT_VERSION)
    problem = _problem(source, obj)
    return Found(source, obj, f"package {obj.name!r} ({source}): {problem}" if problem else "")


def _problem(source: Source, package: Package) -> str:
    """What makes a loaded declaration unusable from `source`, or ""."""
    if source.name and package.name != source.name:
        return f"the entry point is called {source.name!r} but the package {package.name!r}"
    if not NAME.fullmatch(package.name):
        return "its name is not lower-case words joined by '-' (it names commands, flows and CWL ids)"
    if not source.built_in and package.name in RESERVED:
        return f"its name is taken by eoflows' {package.name} flow"
    return _api_mismatch(package)


def discover(targets: list[Source] | None = None) -> list[Found]:
    """Every package of `targets` (default all `sources()`), each loaded and checked, broken ones included.

    A name taken by an earlier source (a built-in first) makes the later one broken.
    """
    found: list[Found] = []
    taken: dict[str, Found] = {}
    for source in sources() if targets is None else targets:
        one = load(source)
        first = taken.get(one.name)
        if one.ok and first is not None:
            kind = "a built-in package" if first.source.built_in else "another package"
            one = Found(source, one.package, f"package {one.name!r} ({source}): its name is taken by {kind} "
                                             f"({first.source})")  # fmt: skip
        if one.ok:
            taken[one.name] = one
        found.append(one)
    return found


def installed() -> dict[str, Package]:
    """The packages that loaded, by name."""
    return {f.name: f.package for f in discover() if f.ok and f.package is not None}


def find(name: str) -> Found | None:
    """The package called `name` as discovered; None when no source declares it.

    Only its own entry point is loaded when it has one (a step command's start-up).
    """
    named = [s for s in sources() if s.name == name]  # built-in first: it keeps its name
    if named:
        return load(named[0])
    return next((f for f in discover() if f.name == name), None)


def require(name: str) -> Package:
    """The installed package `name`; an `InputError` saying why not (broken, or which ones there are)."""
    from eoflows.errors import InputError

    found = find(name)
    if found is None:  # perhaps one that could not even be loaded (its name unknown): say which
        everything = discover()
        unloaded = "".join(f"; {f.error}" for f in everything if f.package is None)
        ok = ", ".join(f.name for f in everything if f.ok) or "none"
        raise InputError(f"package {name!r}: not installed; installed: {ok}{unloaded}")
    if not found.ok or found.package is None:
        raise InputError(found.error)
    return found.package
