"""The lifecycle of behaviors: scores, status changes, consolidation and measured utility.

Pure functions over ``Behavior`` and ``Trace`` objects; they plan, the store and ``bmem curate`` write.
"""

from __future__ import annotations

from .intervals import Difference, newcombe_difference, welch_difference, wilson_interval, wilson_lower_bound
from .scores import BehaviorScores, score
from .utility import (
    UTILITY_TABLE_COLUMNS,
    WITHHELD_KEY,
    UtilityEstimate,
    estimate_utility,
    format_utility_table,
    withhold,
)

__all__ = [
    "UTILITY_TABLE_COLUMNS",
    "WITHHELD_KEY",
    "BehaviorScores",
    "Difference",
    "UtilityEstimate",
    "estimate_utility",
    "format_utility_table",
    "newcombe_difference",
    "score",
    "welch_difference",
    "wilson_interval",
    "wilson_lower_bound",
    "withhold",
]
