"""HTML routes of the site, one module per page family: thin handlers that call the leaderboard
services and render templates (every page is server-rendered from the same service functions as
its JSON twin under ``/api``)."""

from fastapi import APIRouter

from web.pages import account, board, compare, docs, entry, me, progression, queue, submit

router = APIRouter(include_in_schema=False)
for _module in (board, entry, compare, progression, queue, submit, account, docs, me):
    router.include_router(_module.router)
