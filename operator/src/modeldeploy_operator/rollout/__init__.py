"""The rollout state machine, as one pure function split by job.

`machine.step(md, status, observations, now)` returns the next status and the
Events to emit. Nothing in this package does I/O or reads a clock, so every
transition is unit-tested and an operator restarted mid-rollout continues
from `status` alone (stage, step, when it started, analysis counters, the
last command consumed).

Traffic is part of the returned status (`status.traffic`, the contract the
router watches); the caller applies it and scales revisions from it.

The modules, top to bottom (an import-linter contract keeps this order):

- `machine`: `step`; following the spec and moving from stage to stage;
- `observations`: what the caller saw this tick (the input of `step`);
- `commands`, `gating`, `analysis_runs`: what a user's command, a gate's
  answer and an analysis run do to the rollout;
- `tick`: one tick's working status and the transitions all of them share
  (enter a stage, promote, roll back, pause);
- `derived`: phase, traffic and conditions, which follow from stage, step
  and pause; `schedule`: what the caller should observe before a tick;
- `weights`, `pauses`, `timing`, `decision`: the stage's traffic split, why
  a rollout waits for a person, the time arithmetic on status timestamps,
  and what `step` returns.
"""
