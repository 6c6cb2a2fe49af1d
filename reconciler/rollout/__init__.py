"""Progressive delivery of prompt versions: a TrafficSplit's ``rollout`` block moves traffic
from the stable version to the canary step by step, judged on live analytics.

- ``spec``: the block, read into typed values, and the checks that span its fields.
- ``judge``: the statistics (pure): each gate's verdict on one step's window, with its evidence.
- ``decide``: the decision (pure): wait, step, finish, pause or roll back, from the rollout, its
  position (the live prompt's labels) and the judged evidence.
"""
