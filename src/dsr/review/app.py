"""The review web app (FastAPI, server-rendered Jinja2 pages, no front-end build step).

Pages: ``/login``, ``/queue``, ``/items/{id}``, ``/stats`` and ``/audit`` (admins). JSON API under
``/api`` for scripts and the load benchmark. Media by item id only (``/media/items/{id}/video``,
``…/frame/{n}.jpg``, ``…/quantity.png``): a path never comes from the request, so only videos that
imported items reference can be served.

Authentication: ``Authorization: Bearer <token>`` (API clients; no CSRF needed, a browser never adds
that header by itself) or the session cookie set by the login form (then every write must carry the
session's CSRF token, as a form field or an ``X-CSRF-Token`` header). Every page is autoescaped, and a
strict Content-Security-Policy allows no inline script.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dsr.review import store
from dsr.review.agreement import compute_stats
from dsr.review.auth import (
    Reviewer,
    end_session,
    hash_secret,
    same_secret,
    session_user,
    start_session,
    use_login_code,
    user_by_token,
)
from dsr.review.db import open_db, read_session
from dsr.review.decisions import ACTIONS, REJECT_REASONS, Verdict, VerdictError
from dsr.review.media import MediaCache, build_view, quantity_png, rule_check
from dsr.review.writer import GroupCommitWriter

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "dsr_review_session"
LOGIN_COOKIE = "dsr_review_login"
PAGE_SIZE = 50
TOKEN_CACHE_S = 30.0
STATUSES_MINE = ("pending", "accepted", "edited", "rejected", "flagged")
STATUSES_ALL = ("pending", "needs_review", "accepted", "edited", "rejected", "flagged", "disagreement", "resolved")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who, and how (``token`` or ``session`` with its CSRF token)."""

    user: Reviewer
    via: str
    csrf: str | None = None


class DecisionIn(BaseModel):
    """A decision or resolution as the JSON API takes it. ``version``: the one you read (0 = new)."""

    action: str
    answer: str | None = None
    question: str | None = None
    options: dict[str, str] | None = None
    reason: str | None = None
    note: str = ""
    version: int = Field(0, ge=0)

    def verdict(self) -> Verdict:
        return Verdict(action=self.action, answer=self.answer, question=self.question, options=self.options,
                       reason=self.reason, note=self.note)


class _SecurityHeaders:
    """Pure ASGI middleware adding security headers to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in ((b"content-security-policy", _CSP.encode()),
                                   (b"x-content-type-options", b"nosniff"),
                                   (b"referrer-policy", b"same-origin"),
                                   (b"x-frame-options", b"DENY")):
                    if key not in present:
                        headers.append((key, value))
                if not scope["path"].startswith(("/static/", "/media/")) and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


def _float_or_none(value: str | None) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise HTTPException(422, f"not a number: {value!r}") from None


def _filter_from(params: dict[str, str], user: Reviewer) -> store.QueueFilter:
    view = params.get("view") or "mine"
    if view not in ("mine", "all") or (view == "all" and not user.is_admin):
        view = "mine"
    statuses = STATUSES_ALL if view == "all" else STATUSES_MINE
    status = params.get("status") or None
    if status not in (None, *statuses):
        status = None
    sort = params.get("sort") if params.get("sort") in ("position", "stability") else "position"
    return store.QueueFilter(type=params.get("type") or None, status=status,
                             min_stability=_float_or_none(params.get("min_stability")),
                             max_stability=_float_or_none(params.get("max_stability")),
                             disagreement=params.get("disagreement") in ("1", "on", "true") and user.is_admin,
                             view=view, sort=sort or "position")


def create_app(db: str | Path | Engine, *, secure_cookies: bool = False) -> FastAPI:
    """The app over a review database (a path, a URL, or an engine from :func:`dsr.review.db.open_db`)."""
    engine = db if isinstance(db, Engine) else open_db(db, create=False)
    media = MediaCache()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = lambda x, spec="{:.2f}": "—" if x is None else spec.format(x)
    templates = Jinja2Templates(env=env)
    writer = GroupCommitWriter(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        writer.close()  # finish the queued writes before the server exits

    app = FastAPI(title="dsr review", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.engine = engine
    app.state.writer = writer
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # ------------------------------------------------------------------------------------------ auth

    # Bearer tokens are looked up once per TOKEN_CACHE_S (accounts are only ever added while serving);
    # browser sessions are always read from the database, so logging out takes effect at once.
    token_cache: dict[str, tuple[float, Reviewer]] = {}

    def token_user(token: str) -> Reviewer | None:
        key = hash_secret(token)
        hit = token_cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        with engine.connect() as conn:
            user = user_by_token(conn, token)
        if user is not None:
            token_cache[key] = (time.monotonic() + TOKEN_CACHE_S, user)
        return user

    def _bearer(request: Request) -> str | None:
        """The bearer token, "" for a malformed Authorization header, None without one."""
        auth = request.headers.get("authorization")
        if auth is None:
            return None
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def caller_of(request: Request) -> Caller | None:
        token = _bearer(request)
        if token is not None:
            user = token_user(token) if token else None
            return Caller(user, "token") if user is not None else None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            with engine.connect() as conn:
                found = session_user(conn, cookie)
            if found is not None:
                return Caller(found[0], "session", found[1])
        return None

    async def api_caller(request: Request) -> Caller:
        token = _bearer(request)
        cached = token_cache.get(hash_secret(token)) if token else None
        if cached is not None and cached[0] > time.monotonic():
            caller: Caller | None = Caller(cached[1], "token")
        else:
            caller = await run_in_threadpool(caller_of, request)
        if caller is None:
            raise HTTPException(401, "not signed in: send 'Authorization: Bearer <token>' or log in at /login",
                                headers={"WWW-Authenticate": "Bearer"})
        if (request.method not in _SAFE_METHODS and caller.via == "session"
                and not same_secret(request.headers.get("x-csrf-token"), caller.csrf)):
            raise HTTPException(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")
        return caller

    def page_caller(request: Request) -> Caller:
        caller = caller_of(request)
        if caller is None:
            if request.method in _SAFE_METHODS:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise HTTPException(303, "log in first", headers={"Location": f"/login?next={quote(target)}"})
            raise HTTPException(401, "not signed in: log in at /login")
        return caller

    def form_caller(request: Request, csrf_token: str = Form("")) -> Caller:
        caller = page_caller(request)
        if caller.via == "session" and not same_secret(csrf_token, caller.csrf):
            raise HTTPException(403, "this form is stale or was not sent by this site (CSRF token missing or "
                                     "wrong); reload the page and try again")
        return caller

    def render(request: Request, name: str, caller: Caller | None, status: int = 200, **context: Any) -> Response:
        ctx = {"me": caller.user if caller else None, "csrf": caller.csrf if caller and caller.csrf else "",
               **context}
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    # -------------------------------------------------------------------------------- error pages

    def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        if status in (301, 302, 303, 307) and headers and "Location" in headers:
            return RedirectResponse(headers["Location"], status_code=status)
        match = re.match(r"^/items/(\d+)(/|$)", request.url.path)
        reload = f"/items/{match.group(1)}" if match and status in (409, 422) else ""
        return render(request, "error.html", caller_of(request), status=status, code=status, message=message,
                      reload=reload)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(request, 422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(store.NotFound)
    async def _not_found(request: Request, exc: store.NotFound) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(store.Forbidden)
    async def _forbidden(request: Request, exc: store.Forbidden) -> Response:
        return _error(request, 403, str(exc))

    @app.exception_handler(VerdictError)
    async def _invalid(request: Request, exc: VerdictError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(store.Conflict)
    async def _conflict(request: Request, exc: store.Conflict) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc), "current": exc.current}, status_code=409)
        return _error(request, 409, str(exc))

    # -------------------------------------------------------------------------------- login

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/queue", code: str | None = None) -> Response:
        if code:
            user = use_login_code(engine, code)
            if user is None:
                return _login_form(request, next, "this login link has expired or was used already", 401)
            return _logged_in(user, _safe_next(next))
        return _login_form(request, next)

    def _login_form(request: Request, next: str, error: str = "", status: int = 200) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = render(request, "login.html", None, status=status, login_csrf=nonce, next=_safe_next(next),
                          error=error)
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
                            secure=secure_cookies, path="/login")
        return response

    def _logged_in(user: Reviewer, target: str) -> Response:
        cookie, _ = start_session(engine, user)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=7 * 24 * 3600, httponly=True, samesite="strict",
                            secure=secure_cookies, path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/login")
    def login(request: Request, token: str = Form(""), login_csrf: str = Form(""), next: str = Form("/queue")) -> Response:
        if not same_secret(login_csrf, request.cookies.get(LOGIN_COOKIE)):
            return _login_form(request, next, "the login form expired; try again", 403)
        with read_session(engine) as session:
            user = user_by_token(session, token.strip()) if token.strip() else None
        if user is None:
            return _login_form(request, next, "unknown token", 401)
        return _logged_in(user, _safe_next(next))

    @app.post("/logout")
    def logout(request: Request, caller: Caller = Depends(form_caller)) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            end_session(engine, cookie)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -------------------------------------------------------------------------------- pages

    @app.get("/")
    def root() -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(request: Request, caller: Caller = Depends(page_caller), page: int = Query(1, ge=1)) -> Response:
        flt = _filter_from(dict(request.query_params), caller.user)
        rows = store.queue(engine, caller.user, flt)
        pages = max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE)
        page = min(page, pages)
        mine_all = store.queue(engine, caller.user, store.QueueFilter())
        done = sum(1 for r in mine_all if r.status != "pending")
        return render(request, "queue.html", caller, rows=rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE],
                      total=len(rows), page=page, pages=pages, flt=flt, qs=flt.query_string(),
                      types=store.item_types(engine), statuses=STATUSES_ALL if flt.view == "all" else STATUSES_MINE,
                      done=done, all_items=len(mine_all))

    @app.get("/items/{pk:int}", response_class=HTMLResponse)
    def item_page(request: Request, pk: int, caller: Caller = Depends(page_caller)) -> Response:
        detail = store.item_detail(engine, caller.user, pk)
        item = detail.item
        flt = _filter_from(dict(request.query_params), caller.user)
        info, video_error = media.video_info(item.video_path)
        view = build_view(item.question, item.qa, item.visible_until_s, info, video_error)
        answer_text = item.options.get(item.answer, "")
        check = rule_check(item.qa, answer_text)
        rows = store.queue(engine, caller.user, flt)
        order = [r.pk for r in rows]
        index = order.index(pk) if pk in order else None
        prev_pk = order[index - 1] if index is not None and index > 0 else None
        next_pk = order[index + 1] if index is not None and index + 1 < len(order) else None
        return render(request, "item.html", caller, item=item, detail=detail, view=view, check=check,
                      has_quantity=isinstance(item.qa.get("quantity"), dict), qs=flt.query_string(),
                      prev_pk=prev_pk, next_pk=next_pk, position=(index + 1) if index is not None else None,
                      queue_total=len(order), reasons=REJECT_REASONS, actions=ACTIONS,
                      mine=detail.mine, letters=list(item.options))

    def _form_verdict(action: str, answer: str, question: str | None, options: dict[str, str | None],
                      reason: str, note: str) -> Verdict:
        opts = {k: v for k, v in options.items() if v is not None}
        return Verdict(action=action, answer=answer or None,
                       question=question if action == "edit" else None,
                       options=opts if action == "edit" and opts else None,
                       reason=reason or None if action == "reject" else None, note=note)

    def _after_write(request: Request, caller: Caller, pk: int, queue_qs: str) -> Response:
        flt = _filter_from(dict(parse_qsl(queue_qs)), caller.user)
        qs = flt.query_string()
        nxt = store.next_item(engine, caller.user, flt, pk)
        target = f"/items/{nxt}" if nxt is not None else "/queue"
        if nxt is None:
            qs = "&".join(p for p in (qs, "done=1") if p)
        return RedirectResponse(f"{target}?{qs}" if qs else target, status_code=303)

    @app.post("/items/{pk:int}/decision")
    def decide(request: Request, pk: int, caller: Caller = Depends(form_caller), action: str = Form(...),
               answer: str = Form(""), question: str | None = Form(None), option_A: str | None = Form(None),
               option_B: str | None = Form(None), option_C: str | None = Form(None),
               option_D: str | None = Form(None), reason: str = Form(""), note: str = Form(""),
               version: int = Form(0, ge=0), queue: str = Form("")) -> Response:
        verdict = _form_verdict(action, answer, question,
                                {"A": option_A, "B": option_B, "C": option_C, "D": option_D}, reason, note)
        writer.run(lambda session: store.write_decision(session, caller.user, pk, verdict, version))
        return _after_write(request, caller, pk, queue)

    @app.post("/items/{pk:int}/resolution")
    def resolve(request: Request, pk: int, caller: Caller = Depends(form_caller), action: str = Form(...),
                answer: str = Form(""), question: str | None = Form(None), option_A: str | None = Form(None),
                option_B: str | None = Form(None), option_C: str | None = Form(None),
                option_D: str | None = Form(None), reason: str = Form(""), note: str = Form(""),
                version: int = Form(0, ge=0), queue: str = Form("")) -> Response:
        verdict = _form_verdict(action, answer, question,
                                {"A": option_A, "B": option_B, "C": option_C, "D": option_D}, reason, note)
        writer.run(lambda session: store.write_resolution(session, caller.user, pk, verdict, version))
        return RedirectResponse(f"/items/{pk}?{queue}" if queue else f"/items/{pk}", status_code=303)

    @app.get("/stats", response_class=HTMLResponse)
    def stats_page(request: Request, caller: Caller = Depends(page_caller)) -> Response:
        if not caller.user.is_admin:
            raise store.Forbidden("the statistics are for admins (they combine every reviewer's decisions)")
        return render(request, "stats.html", caller, stats=compute_stats(engine), reasons=REJECT_REASONS)

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, caller: Caller = Depends(page_caller), after: int = Query(0, ge=0),
                   item: int | None = Query(None)) -> Response:
        if not caller.user.is_admin:
            raise store.Forbidden("the audit trail is for admins")
        events = store.list_events(engine, after_id=after, limit=200, item_pk=item)
        return render(request, "audit.html", caller, events=events, after=after, item=item)

    # -------------------------------------------------------------------------------- media

    def _media_item(pk: int, caller: Caller) -> Any:
        with read_session(engine) as session:
            from dsr.review.db import Item

            item = session.get(Item, pk)
        if item is None:
            raise store.NotFound(f"no item {pk}")
        return item

    @app.get("/media/items/{pk:int}/video")
    def video(pk: int, caller: Caller = Depends(page_caller)) -> Response:
        item = _media_item(pk, caller)
        if not item.video_path or not Path(item.video_path).is_file():
            raise store.NotFound(f"item {pk} has no readable video")
        kind = mimetypes.guess_type(item.video_path)[0] or "application/octet-stream"
        if not kind.startswith("video/"):
            raise store.NotFound(f"item {pk} references a file that is not a video")
        return FileResponse(item.video_path, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/media/items/{pk:int}/frame/{frame:int}.jpg")
    def frame_jpeg(pk: int, frame: int, caller: Caller = Depends(page_caller)) -> Response:
        item = _media_item(pk, caller)
        info, error = media.video_info(item.video_path)
        if info is None:
            raise store.NotFound(f"item {pk}: {error}")
        view = build_view(item.question, item.qa, item.visible_until_s, info)
        if frame not in view.frames:
            raise store.NotFound(f"frame {frame} is not one of item {pk}'s frames")
        from dsr.video import VideoError

        try:
            data = media.frame_jpeg((pk, view.frames), item.video_path, view.frames, frame)
        except VideoError as exc:
            raise store.NotFound(f"item {pk}: {exc}") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/media/items/{pk:int}/quantity.png")
    def quantity_plot(pk: int, caller: Caller = Depends(page_caller)) -> Response:
        item = _media_item(pk, caller)
        png = media.plot_png(pk, lambda: quantity_png(item.qa, item.options.get(item.answer, "")))
        if png is None:
            raise store.NotFound(f"item {pk} carries no per-frame quantity")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    # -------------------------------------------------------------------------------- JSON API

    def _written(result: store.WriteResult) -> dict[str, Any]:
        return {"id": result.id, "version": result.version, "event_id": result.event_id, "created": result.created,
                "decision": result.verdict.to_json()}

    @app.get("/api/me")
    def api_me(caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        return {"id": caller.user.id, "name": caller.user.name, "is_admin": caller.user.is_admin}

    @app.get("/api/items")
    def api_items(request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        flt = _filter_from(dict(request.query_params), caller.user)
        rows = store.queue(engine, caller.user, flt)
        return {"total": len(rows), "items": [r.__dict__ for r in rows]}

    @app.get("/api/items/{pk:int}")
    def api_item(pk: int, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        detail = store.item_detail(engine, caller.user, pk)
        out = {**store.item_json(detail.item), "mine": detail.mine}
        if caller.user.is_admin:
            out["decisions"] = detail.decisions
            out["resolution"] = detail.resolution
            out["status"] = detail.outcome.status if detail.outcome else None
        return out

    async def _write(fn: Any, *args: Any) -> dict[str, Any]:
        result = await asyncio.wrap_future(writer.submit(lambda session: fn(session, *args)))
        return _written(result)

    @app.put("/api/items/{pk:int}/decision")
    async def api_decide(pk: int, body: DecisionIn, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        return await _write(store.write_decision, caller.user, pk, body.verdict(), body.version)

    @app.get("/api/decisions/{decision_id:int}")
    def api_decision(decision_id: int, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        return store.get_decision(engine, caller.user, decision_id)

    @app.put("/api/decisions/{decision_id:int}")
    async def api_update_decision(decision_id: int, body: DecisionIn,
                                  caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        return await _write(store.write_decision_by_id, caller.user, decision_id, body.verdict(), body.version)

    @app.get("/api/items/{pk:int}/decisions")
    def api_item_decisions(pk: int, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
        if not caller.user.is_admin:
            raise store.Forbidden("only an admin sees every reviewer's decisions")
        return store.item_detail(engine, caller.user, pk).decisions

    @app.put("/api/items/{pk:int}/resolution")
    async def api_resolve(pk: int, body: DecisionIn, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        return await _write(store.write_resolution, caller.user, pk, body.verdict(), body.version)

    @app.get("/api/events")
    def api_events(caller: Caller = Depends(api_caller), after: int = Query(0, ge=0),
                   limit: int = Query(500, ge=1, le=5000), item: int | None = Query(None)) -> list[dict[str, Any]]:
        if not caller.user.is_admin:
            raise store.Forbidden("the audit trail is for admins")
        return store.list_events(engine, after_id=after, limit=limit, item_pk=item)

    @app.get("/api/stats")
    def api_stats(caller: Caller = Depends(api_caller)) -> dict[str, Any]:
        if not caller.user.is_admin:
            raise store.Forbidden("the statistics are for admins")
        return compute_stats(engine).to_json()

    app.add_middleware(_SecurityHeaders)
    return app
