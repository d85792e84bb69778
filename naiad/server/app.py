"""create_app(settings): the whole server, built from settings and nothing global."""

import importlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from starlette.types import Receive, Scope, Send

from naiad import __version__
from naiad.executors import open_executor
from naiad.server import errors
from naiad.server.audit import AuditLog
from naiad.server.auth import ensure_token
from naiad.server.compat import awsjson
from naiad.server.compat.gateway import AwsGateway, account_id
from naiad.server.compat.keys import KeyBook
from naiad.server.compat.logs import logs_service
from naiad.server.compat.query import iam_service, sts_service
from naiad.server.compat.s3 import s3_service
from naiad.server.compat.sagemaker import sagemaker_service
from naiad.server.controller.endpoints import EndpointKeeper
from naiad.server.controller.janitor import Janitor
from naiad.server.controller.notebooks import NotebookKeeper
from naiad.server.controller.registry import Service
from naiad.server.controller.scheduler import Scheduler
from naiad.server.controller.tuner import Tuner
from naiad.server.deps import require_token
from naiad.server.home import HomeGuard, HomeWatch, secure_home
from naiad.server.limits import AccessCheck, BodyLimit, NoNulInUrl
from naiad.server.routes import (
    admin,
    artifacts,
    audit,
    connections,
    endpoints,
    experiments,
    health,
    invocations,
    jobs,
    keys,
    metrics,
    models,
    notebook_proxy,
    notebooks,
    projects,
    runs,
    tuning,
    users,
)
from naiad.server.state import AppState
from naiad.services.jobs import jobs_root
from naiad.settings import Settings, load_settings
from naiad.store.artifacts import open_artifact_store
from naiad.store.db import make_engine, make_sessionmaker, migrate, sqlite_path
from naiad.web import console

API = "/api/v1"


def build_state(settings: Settings) -> AppState:
    """Open the stores and bring the schema up to date (every start; a no-op when current)."""
    secure_home(settings.home)
    engine = make_engine(settings.db_url)
    migrate(engine)
    return AppState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        artifacts=open_artifact_store(
            settings.artifacts_root, s3_endpoint_url=settings.s3_endpoint_url
        ),
        token=ensure_token(settings.layout.token_file) if settings.auth else None,
        home=HomeWatch(settings.home, sqlite_path(engine)),
        # Built here so a job's log and files are reachable with no loop running; the
        # lifespan opens it (the warm standby) and closes it.
        executor=open_executor(
            settings.executor, jobs_root(settings), settings.warm_start, settings.ray_address
        ),
    )


# The background services, started in this order and stopped in reverse; one line each.
SERVICES: tuple[Callable[[AppState], Service], ...] = (
    Scheduler,  # jobs: queue, start, watch, stop
    Tuner,  # tuning jobs: start trials, stop unpromising ones, settle the search
    EndpointKeeper,  # endpoints: replicas, routing, their figures
    NotebookKeeper,  # notebook servers: JupyterLab processes, idle stops
    Janitor,  # finished jobs' work directories past their retention
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Load the numpy-backed metric code while the server already answers.
    threading.Thread(
        target=importlib.import_module, args=("naiad.services.metric_reads",), daemon=True
    ).start()
    state: AppState = app.state.naiad
    state.executor.open()
    try:
        for make in SERVICES:
            state.services.start(make(state))
        state.services.watch(state.sessions)
        yield
    finally:
        await state.services.stop()  # jobs and replicas keep running; the next server re-attaches
        state.executor.close()


class NaiadApp(FastAPI):
    """FastAPI with a door before its middleware stack: the invocations users send with
    the token are answered there, at the replica's pace, with none of the stack's layers."""

    door: invocations.InvocationDoor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.door is None or not await self.door(scope, receive, send):
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> NaiadApp:
    settings = settings or load_settings()
    app = NaiadApp(
        lifespan=_lifespan,
        title="Naiad",
        version=__version__,
        summary="Self-hosted deep-learning platform API.",
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
    )
    app.state.naiad = build_state(settings)
    errors.install(app)

    api = APIRouter(prefix=API, dependencies=[Depends(require_token)])
    for module in (
        experiments,
        runs,
        metrics,
        artifacts,
        jobs,
        tuning,
        models,
        endpoints,
        admin,
        keys,
        connections,
        notebooks,
        audit,
        users,
        projects,
    ):
        api.include_router(module.router)
    app.include_router(health.router, prefix=API)
    app.include_router(users.login_router, prefix=API)
    app.include_router(api)
    app.include_router(invocations.router)
    app.include_router(notebook_proxy.router)

    console.mount(app, settings)  # the web console at /, behind its session cookie

    # Uploads stream to disk under their own limits.
    artifact_route = rf"{API}/(runs/[^/]+/artifacts(/|$)|models/uploads$|sources$)"
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, exempt=artifact_route)
    app.add_middleware(NoNulInUrl)
    app.add_middleware(HomeGuard, watch=app.state.naiad.home)
    app.add_middleware(AccessCheck)  # nothing is read for a caller without the token
    _add_aws_gateway(app, app.state.naiad)
    app.add_middleware(AuditLog, sessions=app.state.naiad.sessions)  # outermost: sees every write
    app.door = invocations.InvocationDoor(app.state.naiad, settings.max_request_bytes)
    return app


def _add_aws_gateway(app: FastAPI, state: AppState) -> None:
    """Outermost: SigV4-signed requests go to the AWS-compatible API their signature names."""
    services = {
        "sagemaker": sagemaker_service(state),
        "s3": s3_service(state),
        "logs": logs_service(state),  # CloudWatch Logs: training jobs' and endpoints' logs
        "sts": sts_service(state),
        "iam": iam_service(state),
    }
    app.add_middleware(
        AwsGateway,
        services=services,
        keys=KeyBook(state.sessions, state.token) if state.token else None,
        account=account_id(state.home.id),
        unsigned_error=awsjson.send_error,
        home=state.home,
    )
