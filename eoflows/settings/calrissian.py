"""Where and how CWL runs on Kubernetes with Calrissian: namespace, image, volumes, limits, step-pod settings.

The Kubernetes connection itself (a kubeconfig) is a Prefect block of prefect-kubernetes: only the block
(`blocks.calrissian.CalrissianBlock`) holds it; without one, Calrissian runs in-cluster.
"""

import re
from typing import Any

from pydantic import Field, field_validator

from eoflows.settings.base import Settings

MEMORY = re.compile(r"^(\d+)(K|M|G|T|Ki|Mi|Gi|Ti|KB|MB|GB|TB)$")
#: MiB per unit: single letters and *i are binary, *B decimal (as Calrissian reads --max-ram).
UNIT_MIB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024**2,
            "KB": 1e3 / 2**20, "MB": 1e6 / 2**20, "GB": 1e9 / 2**20, "TB": 1e12 / 2**20}  # fmt: skip


def memory_mib(value: str) -> float:
    """MiB in a Calrissian memory size such as ``16G`` or ``512Mi``."""
    match = MEMORY.match(value)
    if not match:
        raise ValueError(f"memory {value!r}: expected an integer and a unit (K, M, G, T, Ki..Ti or KB..TB), like 16G")
    return int(match[1]) * UNIT_MIB[match[2]]


class CalrissianSettings(Settings):
    """Namespace, image, volumes, limits and step-pod settings of Calrissian runs."""

    namespace: str = Field(default="eoflows", description="Namespace of the Calrissian Job and its step pods.")
    image: str = Field(
        default="ghcr.io/duke-gcb/calrissian/calrissian:0.19.0",
        description="Calrissian image (0.19 or later for Dask Gateway support).",
    )
    service_account: str = Field(default="calrissian-sa", description="Service account of Calrissian and its pods.")
    input_claim: str = Field(default="calrissian-input-data", description="RWX claim for input data.")
    tmpout_claim: str = Field(default="calrissian-tmpout", description="RWX claim for intermediate outputs.")
    output_claim: str = Field(default="calrissian-output-data", description="RWX claim for results and reports.")
    input_path: str = Field(default="/calrissian/input-data", description="Mount path of the input claim.")
    tmpout_path: str = Field(default="/calrissian/tmpout", description="Mount path of the tmpout claim.")
    output_path: str = Field(default="/calrissian/output-data", description="Mount path of the output claim.")
    max_ram: str = Field(default="16G", description="--max-ram: memory of all step pods running at once.")
    max_cores: int = Field(default=8, ge=1, description="--max-cores: cores of all step pods running at once.")
    dask_gateway_url: str | None = Field(default=None, description="--dask-gateway-url for Dask steps.")
    pod_labels: dict[str, str] = Field(default_factory=dict, description="Labels added to every step pod.")
    pod_env: dict[str, str] = Field(
        default_factory=dict, description="Plain (non-secret) environment variables of every step pod."
    )
    secret_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of the Calrissian pod taken from Secrets: VAR -> 'secret-name/key' (never values).",
    )
    node_selectors: dict[str, str] = Field(default_factory=dict, description="Node selector of every step pod.")
    launcher_resources: dict[str, Any] = Field(
        default_factory=lambda: {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },  # fmt: skip
        description="Resources of the Calrissian pod itself.",
    )
    run_as_user: int = Field(default=1000, description="User id of the Calrissian pod (it must own the volumes).")
    run_as_group: int = Field(default=1000, description="Group id of the Calrissian pod.")
    retry_attempts: int = Field(default=3, ge=1, description="RETRY_ATTEMPTS of Calrissian (its default is 10).")
    backoff_limit: int = Field(default=0, ge=0, description="Job backoffLimit: how often Kubernetes reruns it.")
    timeout_seconds: float = Field(default=6 * 3600, gt=0, description="Give up (and clean up) after this long.")
    poll_seconds: float = Field(default=5.0, gt=0, description="Polling period when the watch is unavailable.")
    keep_pods: bool = Field(default=False, description="Keep the Job, its pods and config for debugging.")

    @field_validator("max_ram")
    @classmethod
    def _memory(cls, value: str) -> str:
        memory_mib(value)
        return value

    @field_validator("secret_env")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        for var, ref in value.items():
            if ref.count("/") != 1 or not all(ref.split("/")):
                raise ValueError(f"secret_env {var}: {ref!r} is not a 'secret-name/key' reference")
        return value
