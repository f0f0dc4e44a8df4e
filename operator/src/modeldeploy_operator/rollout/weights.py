"""`status.traffic` for a stage: which tracks serve and what share each gets.

This is the contract the builtin router watches and the Gateway API provider
copies into an HTTPRoute; it follows from the stage and step alone.
"""

from __future__ import annotations

from modeldeploy_operator.spec import ModelDeployment, Stage
from modeldeploy_operator.status import Ref, Status, Track, Traffic


def traffic_for(md: ModelDeployment, s: Status, stage: Stage) -> Traffic:
    def track(ref: Ref | None, name: str) -> Track:
        ref = ref or Ref()
        return Track(f"{md.name}-{name}", ref.version, ref.revision)

    tracks: dict[str, Track] = {}
    if s.stable:
        tracks["stable"] = track(s.stable, "stable")
    weight, mirror = 0, 0
    if stage is Stage.SHADOW:
        tracks["shadow"] = track(s.candidate, "shadow")
        mirror = md.strategy.shadow.mirror_percent if md.strategy.shadow else 100
    elif stage is Stage.CANARY:
        tracks["canary"] = track(s.candidate, "canary")
        weight = md.strategy.steps[s.current_step].weight
    elif stage is Stage.BAKE:
        tracks["canary"] = track(s.candidate, "canary")
        weight = 100
    return Traffic(weight, mirror, tracks)
