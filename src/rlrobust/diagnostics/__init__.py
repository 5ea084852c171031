"""Diagnostics: is a model's measured robustness real? Each check raises documented flags.

Names are re-exported one import line per module (``name as name`` marks a re-export), so new
diagnostics add their own line.
"""

from __future__ import annotations

from rlrobust.diagnostics.masking import MaskingReport as MaskingReport
from rlrobust.diagnostics.masking import diagnose_masking as diagnose_masking
from rlrobust.diagnostics.masking_checks import Flag as Flag
