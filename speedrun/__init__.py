"""speedrun: the `speedrun` command. The work lives in trainer/, submissions/, leaderboard/, web/."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("speedrun")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
