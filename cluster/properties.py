"""Placeholders in resource properties: ``{data}``, ``{local}`` and ``{node}``.

They are resolved on the node that brings a resource online, so one definition serves every
node: each node has its own local directory, as separate machines would.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any

PLACEHOLDER_RE = re.compile(r"\{(data|local|node)\}")


def resolve(value: Any, values: Mapping[str, str]) -> Any:
    """Replace placeholders in strings, recursively through lists and dicts."""
    if isinstance(value, str):
        return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, values) for k, v in value.items()}
    return value


def app_environment(values: Mapping[str, str], address: str, cluster: str,
                    network_name: str | None = None) -> dict[str, str]:
    """What a resource sees of its node: a node-local state directory, the node's name and
    address, the group's network name (MSCS UseNetworkName), and this installation's programs
    first on PATH, so ``command = hanotepad ...`` finds the editor installed beside the node."""
    env = {"XDG_STATE_HOME": f"{values['local']}/state", "HACLUSTER_NODE": values["node"],
           "HACLUSTER_ADDRESS": address, "HACLUSTER_CLUSTER": cluster,
           "PATH": os.pathsep.join([os.path.dirname(sys.executable),
                                    os.environ.get("PATH", os.defpath)])}
    if network_name:
        env["HACLUSTER_NETWORK_NAME"] = network_name
    return env


def checkpoint_paths(props: Mapping[str, Any]) -> list[str]:
    raw = props.get("checkpoints")
    if not raw:
        return []
    if isinstance(raw, str):
        return [p.strip() for p in raw.split(",") if p.strip()]
    return [str(p) for p in raw]
