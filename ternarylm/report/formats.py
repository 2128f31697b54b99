"""Names a torch stage's file and its report reader agree on; they live in ``ternarylm.layout`` (the
neutral contract module) and are re-exported here for older imports."""

from ternarylm.layout import NONCAUSAL, ROLE_COLUMN, ROLES, SCRATCH, SPARSITY_FIELDS, TRAJECTORY_FIELDS

__all__ = ["NONCAUSAL", "ROLE_COLUMN", "ROLES", "SCRATCH", "SPARSITY_FIELDS", "TRAJECTORY_FIELDS"]
