"""The FastAPI application: routes, JSON errors, the API key, CORS, metrics, the lifespan.

Models load in the decoding thread once the server listens; until they are loaded `/health`
answers 503 and translation requests are refused with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from transformer.serve import requests as rq
from transformer.serve.batching import Batcher, BatchLimits
from transformer.serve.metrics import Metrics, MetricsMiddleware
from transformer.serve.models import ServedModel, languages
from transformer.serve.translate import Translate

logger = logging.getLogger(__name__)

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class Settings:
    """How the server behaves (from `tmt-serve`'s flags)."""

    limits: rq.Limits = field(default_factory=rq.Limits)
    batching: BatchLimits = field(default_factory=BatchLimits)
    api_key: str | None = None
    cors: list[str] = field(default_factory=list)
    timeout: float = 30.0


@dataclass
class State:
    """What the app holds: the models once loaded, or why loading failed."""

    models: dict[str, ServedModel] | None = None
    failed: str | None = None
    translate: Translate | None = None

    def ready(self) -> Translate:
        """The translation endpoints' logic, or 503 while the models load (or failed to)."""
        if self.translate is None:
            raise rq.ApiError(503, self.failed or "the models are loading; retry shortly.")
        return self.translate


async def read_fields(request: Request, max_bytes: int) -> dict:
    """The request's fields, sent as JSON or as form fields (LibreTranslate takes both)."""
    size = int(request.headers.get("content-length") or 0)
    body = b""
    if size <= max_bytes:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                break
    if max(size, len(body)) > max_bytes:
        raise rq.ApiError(413, f"the request body exceeds {max_bytes} bytes.", "max_chars")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in FORMS:
        request._body = body  # starlette parses the form from the body it was given
        form = await request.form()
        values = {key: form.getlist(key) for key in form}
        if any(not isinstance(v, str) for vs in values.values() for v in vs):
            raise rq.ApiError(400, "Invalid request: file uploads are not translated.")
        return {key: vs[0] if len(vs) == 1 else vs for key, vs in values.items()}
    if kind not in ("", "application/json") and not kind.endswith("+json"):
        raise rq.ApiError(415, f"send JSON or form fields, not {kind}.")
    try:
        fields = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise rq.ApiError(400, f"malformed JSON: {error}.") from None
    if not isinstance(fields, dict):
        raise rq.ApiError(400, "Invalid request: the JSON body must be an object of fields.")
    return fields


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(rq.ApiError)
    async def api_error(request: Request, error: rq.ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        logger.exception("request to %s failed", request.url.path)
        return JSONResponse({"error": "internal error; the server's log has it."}, 500)


def create_app(
    settings: Settings,
    load: Callable[[], dict[str, ServedModel]],
    on_failure: Callable[[str], None],
) -> FastAPI:
    """The app; `load` runs in the decoding thread at start-up, `on_failure` gets its error."""
    state = State()
    metrics = Metrics()
    lifespan = _lifespan(state, settings, metrics, load, on_failure)
    app = FastAPI(title="tmt-serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    _install_errors(app)
    if settings.cors:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors, allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )  # fmt: skip
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_information(app, state, settings, metrics)
    _add_translation(app, state, settings)
    return app


def _lifespan(
    state: State,
    settings: Settings,
    metrics: Metrics,
    load: Callable[[], dict[str, ServedModel]],
    on_failure: Callable[[str], None],
) -> Callable:
    """Start the batcher and load the models in its thread; stop it after the last answer."""

    async def load_models(batcher: Batcher) -> None:
        try:
            state.models = await batcher.run_alone(load)
        except Exception as error:  # reported as one line; the server then exits 2
            state.failed = str(error)
            on_failure(str(error))
            return
        state.translate = Translate(
            state.models, settings.limits, batcher, settings.timeout, metrics.translated
        )
        logger.info("serving %s", ", ".join(state.models))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = Batcher(settings.batching, observe=metrics.batch)
        batcher.start()
        loading = asyncio.get_running_loop().create_task(load_models(batcher))
        yield
        loading.cancel()
        await batcher.stop()

    return lifespan


def _add_information(app: FastAPI, state: State, settings: Settings, metrics: Metrics) -> None:
    """The page, /health, /languages, /models, /frontend/settings and /metrics."""
    page = resources.files("transformer.serve").joinpath("page.html").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.translate is None:
            return JSONResponse({"status": "failed" if state.failed else "loading"}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/languages")
    async def get_languages() -> JSONResponse:
        return JSONResponse(languages(state.ready().models))

    @app.get("/models")
    async def get_models() -> JSONResponse:
        return JSONResponse({
            "models": [m.describe() for m in state.ready().models.values()],
            "batching": vars(settings.batching),
            "limits": vars(settings.limits),
            "timeout": settings.timeout,
            "api_key_required": settings.api_key is not None,
        })  # fmt: skip

    @app.get("/frontend/settings")
    async def frontend_settings() -> JSONResponse:
        """What LibreTranslate's web clients read first."""
        first = next(iter(state.ready().models.values()))
        return JSONResponse({
            "charLimit": settings.limits.max_chars,
            "keyRequired": settings.api_key is not None,
            "suggestions": False,
            "supportedFilesFormat": [],
            "language": {
                "source": {"code": first.source, "name": first.source},
                "target": {"code": first.target, "name": first.target},
            },
        })  # fmt: skip

    @app.get("/metrics")
    async def get_metrics() -> Response:
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _add_translation(app: FastAPI, state: State, settings: Settings) -> None:
    """LibreTranslate's POST /translate and our POST /api/translate."""
    max_bytes = 8 * settings.limits.max_chars + 65536  # JSON escapes, lists, other fields

    @app.post("/translate")
    async def translate(request: Request) -> JSONResponse:
        fields = await read_fields(request, max_bytes)
        rq.check_key(fields, settings.api_key)
        return JSONResponse(await state.ready().libre(fields))

    @app.post("/api/translate")
    async def api_translate(request: Request) -> JSONResponse:
        fields = await read_fields(request, max_bytes)
        rq.check_key(fields, settings.api_key)
        return JSONResponse(await state.ready().ours(fields))
