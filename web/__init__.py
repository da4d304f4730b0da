"""Server-rendered pages of the leaderboard site (Jinja2 templates, static CSS/JS, SVG charts)."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
