"""
namegen on Ray Serve: the same FastAPI app behind Serve's HTTP proxy, as replicas on a Ray
cluster. Each replica builds the app with create_app() and runs its lifespan, so it loads and checks
the models itself, exactly as a uvicorn process does. Needs the `ray` extra.

    pip install -e '.[ray]'
    serve run deploy/ray/serve.local.yaml                  # a local cluster, http://127.0.0.1:8000
    serve run app.ray_serve:build min_replicas=1 max_replicas=4
    serve deploy deploy/ray/serve.yaml                     # a running cluster (KubeRay: rayservice.yaml)

Every setting of the deployment is an argument of `build`, and nowhere else:
- `replicas` (default 2), or `min_replicas` and `max_replicas` for Serve's autoscaling;
- `cpus` per replica (default 1): torch's inter-op threads and NAMEGEN_BATCH_THREADS follow it;
- `max_ongoing_requests` per replica (default 256, NAMEGEN_MAX_IN_FLIGHT's default): Serve's own
  default (5) would starve the micro-batching, which needs many concurrent requests in one process
  to fill a batch;
- `max_queued_requests` (default 256): requests each proxy holds for the deployment while every
  replica is at max_ongoing_requests; past it the proxy answers 503 at once instead of queueing
  without bound, as one uvicorn process does past NAMEGEN_MAX_IN_FLIGHT.
The proxy's own deadline for a request, `request_timeout_s` (Serve answers 408 past it), is an
HTTP option of the cluster, not of the deployment: deploy/ray/serve.yaml sets it (30 s), which is
why `serve run deploy/ray/serve.local.yaml` (one machine) or `serve deploy deploy/ray/serve.yaml`
(a cluster) is the way to run it. The NAMEGEN_* settings of the process
that deploys are passed on to the replicas.
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve import Application

from app.main import create_app

MAX_ONGOING_REQUESTS = 256  # as NAMEGEN_MAX_IN_FLIGHT's default: past it, requests queue in Serve
MAX_QUEUED_REQUESTS = 256  # per proxy: past it, Serve answers 503


class NamegenReplica:
    """One Serve replica of the namegen app; its routes and lifespan are create_app()'s."""

    app: Any  # the ASGI app, set by Serve's ingress wrapper

    async def _run_asgi_lifespan_startup(self) -> None:
        """Serve runs the app's lifespan here (the ingress wrapper's method, which this class comes
        before) and, when it fails, reports only "ASGI lifespan startup failed". A models folder
        that cannot be loaded fails the deployment with the reason instead, naming the file, as
        uvicorn does (tests/test_ray.py checks this hook)."""
        try:
            await super()._run_asgi_lifespan_startup()  # type: ignore[misc]
        except RuntimeError:
            reason = getattr(self.app.state, "startup_failure", None)
            if reason is None:
                raise
            raise RuntimeError(reason) from None


def build(args: dict[str, str]) -> Application:
    """The Serve application, from `serve run app.ray_serve:build key=value ...` arguments."""
    cpus = float(args.get("cpus", 1))
    env = {k: v for k, v in os.environ.items() if k.startswith("NAMEGEN_")}
    env.setdefault("NAMEGEN_BATCH_THREADS", str(max(1, int(cpus))))
    options: dict[str, Any] = {
        "name": "namegen",
        "max_ongoing_requests": int(args.get("max_ongoing_requests", MAX_ONGOING_REQUESTS)),
        "max_queued_requests": int(args.get("max_queued_requests", MAX_QUEUED_REQUESTS)),
        "ray_actor_options": {"num_cpus": cpus, "runtime_env": {"env_vars": env}},
        "health_check_period_s": 5,
        "graceful_shutdown_timeout_s": 20,  # the SIGTERM drain: requests end within 10 s
    }
    if "min_replicas" in args or "max_replicas" in args:
        options["autoscaling_config"] = {
            "min_replicas": int(args.get("min_replicas", 1)),
            "max_replicas": int(args.get("max_replicas", 4)),
            "target_ongoing_requests": int(args.get("target_ongoing_requests", 64)),
        }
    else:
        options["num_replicas"] = int(args.get("replicas", 2))
    deployment = serve.deployment(**options)(serve.ingress(create_app)(NamegenReplica))
    application: Application = deployment.bind()
    return application
