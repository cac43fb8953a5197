"""Reaching a Ray cluster: `ray` starts a private one on this machine, `ray://HOST:PORT`
joins a running one through Ray Client.

The private cluster is bound to 127.0.0.1: Ray resolves 127.0.0.1 to the machine's
outward address unless it believes it runs outside a cluster
(ray_constants.ENABLE_RAY_CLUSTER, set from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER), so that
is switched off before it starts; its gRPC servers then listen on loopback only. Its
dashboard is off and it takes the machine's cores.
"""
from __future__ import annotations

import os
import socket
import warnings
from urllib.parse import urlsplit

LOCAL = "ray"
PROBE_TIMEOUT_S = 5.0


class ClusterUnreachable(Exception):
    """One message a person can act on."""


def check_address(address: str) -> tuple[str, int] | None:
    """None for the local cluster, (host, port) for ray://HOST:PORT; ValueError else."""
    if address == LOCAL:
        return None
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "ray" or not parts.hostname or port is None:
        raise ValueError(f"--cluster takes 'ray' (a Ray on this machine) or ray://HOST:PORT "
                         f"(a running cluster's client port, 10001 by default), not {address!r}")
    return parts.hostname, port


def _quiet_init(**kwargs) -> None:
    import ray
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(logging_level="ERROR", log_to_driver=False, **kwargs)
    _errors_to_stderr()


def _errors_to_stderr() -> None:
    """Ray prints the cluster's error messages (a worker that died) on stdout, where they
    would break `--json`; the runner reports those itself, so they go to stderr."""
    from ray._private import worker
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "avindex", False):
        return

    def to_stderr(data, *args, **kwargs):
        return original({**data, "is_err": True}, *args, **kwargs)
    to_stderr.avindex = True
    worker.print_to_stdstream = to_stderr


def connect(address: str, num_cpus: int | None = None) -> bool:
    """Join or start the cluster; True when this call did (the caller then disconnects),
    False when this process was already connected (it is left as it was)."""
    remote = check_address(address)
    try:
        import ray
    except ImportError:
        raise ClusterUnreachable("Ray is not installed: indexing on a cluster needs the "
                                 "optional extra, `pip install 'avindex[ray]'`.") from None
    if remote is not None:
        _probe(address, *remote)
    if ray.is_initialized():
        return False
    if remote is None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"   # for the processes it starts
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
        try:
            _quiet_init(address="local", num_cpus=num_cpus or os.cpu_count() or 1,
                        include_dashboard=False, _node_ip_address="127.0.0.1")
        except Exception as exc:  # noqa: BLE001
            raise ClusterUnreachable(f"Could not start a Ray cluster on this machine: "
                                     f"{type(exc).__name__}: {exc}") from None
        return True
    try:
        _quiet_init(address=address)
    except Exception as exc:  # noqa: BLE001
        raise _unreachable(address, remote[1], exc) from None
    return True


def _unreachable(address: str, port: int, exc: BaseException) -> ClusterUnreachable:
    return ClusterUnreachable(
        f"Cannot reach the Ray cluster at {address} ({type(exc).__name__}: {exc}). "
        "Check that the head node runs `ray start --head` with its client server on "
        f"port {port}, and that this machine reaches it (VPN, firewall). Nothing was "
        "indexed or queued.")


def _probe(address: str, host: str, port: int) -> None:
    """Ray Client retries for about 30 s before it gives up; a closed or filtered port
    is told at once, in one line."""
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise _unreachable(address, port, exc) from None


def disconnect() -> None:
    import ray
    ray.shutdown()
