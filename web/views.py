"""HTML routes of the site. Filled by the pages work (issue 7)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
