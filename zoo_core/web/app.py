"""``zoo serve``: the Starlette application over a results store, read-only.

Every page has a ``.json`` twin (the same dict, :mod:`zoo_core.web.pages`); the predict API
speaks TensorFlow Serving's REST format (:mod:`zoo_core.web.models`). A bad request gets a
4xx with one line (JSON for the API and the twins, HTML for pages), never a traceback; a
URL names a run, model or file of :data:`pages.SERVED_FILES`, never a path.
"""

from __future__ import annotations

import ipaddress
import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from zoo_core.catalogue import open_zoo
from zoo_core.errors import StoreError, UnknownNameError, UsageError, ZooError, first_line
from zoo_core.store.records import run_files
from zoo_core.store import Store
from zoo_core.web import pages
from zoo_core.web.models import (MAX_BODY_BYTES, MAX_UPLOAD_BYTES, BadRequest, Models, NoModel,
                                 ThreadStores, parse_predict, predictions, status, try_upload)
from zoo_core.web.render import Links, render

LOG = logging.getLogger("zoo.serve")
LINKS = Links("/")
HEADERS = {  # nothing from elsewhere, no framing, no sniffing
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "testserver")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(store: str | None = None, registry: str | None = None, host: str = "127.0.0.1"
               ) -> Starlette:
    """The application over the store at ``store`` (None: ``ZOO_STORE`` or the default).

    Bound to a loopback ``host``, it answers only requests addressed to this machine's
    names (a page of another site cannot reach it through DNS rebinding).
    """
    zoo = open_zoo(registry)
    stores = ThreadStores(store)
    models = Models(zoo, stores)

    @asynccontextmanager
    async def lifespan(app):
        yield
        models.close()

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_NAMES))] \
        if is_loopback(host) else []
    app = Starlette(routes=_routes(), middleware=middleware, lifespan=lifespan,
                    exception_handlers={Exception: _error, HTTPException: _error})
    app.state.zoo, app.state.models, app.state.stores = zoo, models, stores
    return app


def _routes() -> list:
    static = resources.files("zoo_core.web") / "static"
    return [
        Route("/", leaderboard), Route("/index.json", leaderboard),
        Route("/runs", runs_page), Route("/runs.json", runs_page),
        Route("/runs/{run_id}", run_page), Route("/runs/{run_id}/files/{name}", run_file),
        Route("/models/{name}", model_page),
        Route("/models/{name}/weights/{pack}", weights_file),
        Route("/models/{name}/try", try_it, methods=["POST"]),
        Route("/compare", compare_page), Route("/compare.json", compare_page),
        Route("/sweeps", sweeps_page), Route("/sweeps.json", sweeps_page),
        Route("/sweeps/{sweep_id}", sweep_page),
        Route("/v1/models/{target}", tf_serving, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]


# -- answers -------------------------------------------------------------------------------------


def _json_wanted(request: Request) -> bool:
    path = request.url.path
    return path.endswith(".json") or path.startswith("/v1/") or path.endswith("/try")


def _page(request: Request, template: str, data, **context) -> Response:
    """The page, or its ``.json`` twin (the same data)."""
    if _json_wanted(request):
        return JSONResponse(data, headers=HEADERS)
    return HTMLResponse(render(template, LINKS, data=data, **context), headers=HEADERS)


def _twin(name: str) -> tuple[str, bool]:
    """A path parameter without its ``.json``, and whether it had one."""
    return (name[:-5], True) if name.endswith(".json") else (name, False)


async def _error(request: Request, exc: Exception) -> Response:
    """One line, 4xx for the request's fault, 5xx for the server's; never a traceback."""
    if isinstance(exc, HTTPException):
        code, text = exc.status_code, str(exc.detail)
    elif isinstance(exc, (UnknownNameError, pages.NotFound)):
        code, text = 404, first_line(exc)
    elif isinstance(exc, (UsageError, NoModel)):
        code, text = (404 if isinstance(exc, NoModel) else 400), first_line(exc)
    elif isinstance(exc, StoreError):
        code, text = 503, first_line(exc)
    elif isinstance(exc, ZooError):
        code, text = 422, first_line(exc)
    else:
        LOG.error("internal error on %s", request.url.path, exc_info=exc)
        code, text = 500, f"internal error ({type(exc).__name__}); see the server's log"
    if _json_wanted(request):
        return JSONResponse({"error": text}, status_code=code, headers=HEADERS)
    html = render("error.html", LINKS, code=code, message=text)
    return HTMLResponse(html, status_code=code, headers=HEADERS)


async def _body(request: Request, cap: int) -> bytes:
    """The request's body, refused (413) as soon as it is over ``cap`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"the request is over {cap:,} bytes: send less")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise HTTPException(413, f"the request is over {cap:,} bytes: send less")
        chunks.append(chunk)
    return b"".join(chunks)


def _store(request: Request) -> Store:
    """This server thread's store (:class:`ThreadStores`)."""
    return request.app.state.stores.get()


# -- pages ----------------------------------------------------------------------------------------


def leaderboard(request: Request) -> Response:
    q = request.query_params
    data = pages.leaderboard(_store(request), q.get("include_partial") in ("1", "true", "on"),
                             q.get("model"), q.get("dataset"), q.get("tag"))
    return _page(request, "leaderboard.html", data, site=False)


def runs_page(request: Request) -> Response:
    q = request.query_params
    data = pages.runs(_store(request), q.get("model"), q.get("dataset"), q.get("status"),
                      q.get("tag"))
    return _page(request, "runs.html", data)


def run_page(request: Request) -> Response:
    run_id, _ = _twin(request.path_params["run_id"])
    data = pages.run(request.app.state.zoo, _store(request), run_id)
    return _page(request, "run.html", data, site=False)


def run_file(request: Request) -> Response:
    """One of the run folder's :data:`pages.SERVED_FILES`, found by the library, never by a
    path taken from the URL."""
    name = request.path_params["name"]
    if name not in pages.SERVED_FILES:
        raise pages.NotFound(f"no file {name[:80]!r}: a run serves {', '.join(pages.SERVED_FILES)}")
    record = _store(request).get(request.path_params["run_id"])
    found = run_files(record).get(name)
    if found is None or not Path(found).is_file():
        raise pages.NotFound(f"run {record.run_id} has no {name}")
    return FileResponse(found, headers=HEADERS)


def model_page(request: Request) -> Response:
    name, _ = _twin(request.path_params["name"])
    zoo = request.app.state.zoo
    data = pages.model(zoo, _store(request), name, request.query_params.get("dataset"))
    shape = _shape(zoo, data["dataset"])
    return _page(request, "model.html", data, site=False, canvas=shape == (28, 28, 1))


def _shape(zoo, dataset: str):
    try:
        return tuple(zoo.dataset(dataset).image_shape)
    except ZooError:
        return None


def weights_file(request: Request) -> Response:
    pack = request.path_params["pack"]
    if not pack.endswith(".zoopack"):
        raise pages.NotFound("a pack's link ends in .zoopack")
    path = pages.shipped_pack(request.app.state.zoo, request.path_params["name"],
                              pack.removesuffix(".zoopack"))
    return FileResponse(path, filename=f"{request.path_params['name']}-{pack}", headers=HEADERS)


def compare_page(request: Request) -> Response:
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if not a or not b:
        raise BadRequest("name two runs: /compare?a=RUN_ID&b=RUN_ID")
    data = pages.compare(_store(request), a, b)
    return _page(request, "compare.html", data)


def sweeps_page(request: Request) -> Response:
    data = pages.sweeps(_store(request))
    return _page(request, "sweeps.html", data)


def sweep_page(request: Request) -> Response:
    sweep_id, _ = _twin(request.path_params["sweep_id"])
    data = pages.sweep(_store(request), sweep_id)
    return _page(request, "sweep.html", data)


# -- predictions ----------------------------------------------------------------------------------


async def try_it(request: Request) -> Response:
    """A file uploaded on a model's card (the request's body), classified."""
    body = await _body(request, MAX_UPLOAD_BYTES)
    invert = request.query_params.get("invert") in ("1", "true", "on")
    answer = await run_in_threadpool(try_upload, request.app.state.models,
                                     request.path_params["name"], body, invert,
                                     request.query_params.get("dataset"))
    return JSONResponse(answer, headers=HEADERS)


async def tf_serving(request: Request) -> Response:
    """``GET /v1/models/NAME`` and ``POST /v1/models/NAME:predict``, as TF Serving answers."""
    target = request.path_params["target"]
    models: Models = request.app.state.models
    if request.method == "GET":
        record = await run_in_threadpool(models.resolve, target)
        return JSONResponse(status(record), headers=HEADERS)
    name, _, verb = target.rpartition(":")
    if verb != "predict" or not name:
        raise HTTPException(404, f"POST /v1/models/NAME:predict; not {target[:80]!r}")
    body = await _body(request, MAX_BODY_BYTES)
    answer = await run_in_threadpool(_predict, models, name, body)
    return JSONResponse(answer, headers=HEADERS)


def _predict(models: Models, name: str, body: bytes) -> dict:
    record = models.resolve(name)
    x, rows = parse_predict(body, models.zoo.dataset(record.dataset).image_shape)
    return predictions(models.classifier(record), x, rows)
