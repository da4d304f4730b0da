"""Moved to ``contract.core_v1``: this name stays until leaderboard/ and web/ import from there."""

from contract.core_v1 import *  # noqa: F403
