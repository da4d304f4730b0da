"""Moved to ``contract.schema``: this name stays until leaderboard/ and web/ import from there."""

from contract import LOG_FILE, METRICS_FILE, RESULT_FILE  # noqa: F401
from contract.schema import *  # noqa: F403
from contract.schema import RANKED_RULES_VERSION as VERIFIER_RULES_VERSION  # noqa: F401
from contract.schema import SELF_TIMED_RULES_VERSION as RULES_VERSION  # noqa: F401
