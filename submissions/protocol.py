"""Moved to ``contract.protocol``: this name stays until leaderboard/ and web/ import from there."""

from contract.protocol import *  # noqa: F403
