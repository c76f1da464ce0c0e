"""The reference for bench/web.py: a bare Starlette app on the same uvicorn.

POST /unsubscribe/{token} reads the body and answers a small HTML page, with no
token check, no database and no template: what the server and framework cost.
"""

from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

PAGE = "<!doctype html><html><body><h1>You have been unsubscribed</h1></body></html>"


async def one_click(request):
    await request.body()
    return HTMLResponse(PAGE)


app = Starlette(routes=[Route("/unsubscribe/{token}", one_click, methods=["POST"])])
