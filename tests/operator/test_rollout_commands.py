"""Manual commands (`modeldeploy.io/command`): each applied once, in the stages it fits."""

from __future__ import annotations

import copy

import pytest
from md_factories import Driver, started
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.rollout import commands, pauses
from modeldeploy_operator.status import Status

FAIL = Verdict.FAIL


class TestCommands:
    def cmd(self, d: Driver, action: str, nonce: str = "n1"):
        return d.tick(1, candidate_ready=True, command=commands.Command(action, nonce))

    def test_abort(self):
        d = started()
        self.cmd(d, "abort")
        assert d.phase == "RolledBack"
        assert d.condition("Degraded")["reason"] == "Aborted"

    def test_pause_and_resume(self):
        d = started()
        self.cmd(d, "pause", "a")
        assert d.phase == "Paused" and d.condition("Progressing")["reason"] == "ManualPause"
        assert pauses.pause_reason(d.state) == "ManualPause"
        assert d.condition("Degraded")["status"] == "False"
        d.tick(300, candidate_ready=True)
        assert d.phase == "Paused"
        self.cmd(d, "resume", "b")
        assert d.phase == "Canary"
        assert pauses.pause_reason(d.state) is None

    def test_promote_skips_remaining_steps(self):
        d = started()
        self.cmd(d, "promote")
        assert d.phase == "Succeeded" and d.status["stable"]["version"] == "2.0.0"

    def test_retry_after_rollback(self):
        d = started()
        d.analyse(FAIL)
        d.tick(1, command=commands.Command("retry", "r1"))  # candidate at 0 replicas
        assert d.phase == "Progressing" and d.status["candidate"]["version"] == "2.0.0"
        assert d.status["analysis"]["failures"] == 0

    def test_retry_after_the_first_revision_failed_starts_it_again(self):
        d = Driver()
        d.tick(stable_ready=False)
        d.tick(601, stable_ready=False)
        assert d.phase == "Failed"
        self.cmd(d, "retry")
        assert d.phase == "Pending" and d.condition("Degraded")["status"] == "False"
        assert d.reasons()[-2:] == ["Retry", "Deploying"]
        d.tick(300, stable_ready=False)  # the deadline counts from the retry
        assert d.phase == "Pending"
        d.tick(301, stable_ready=False)
        assert d.phase == "Failed"

    def test_a_command_is_consumed_once(self):
        d = started()
        self.cmd(d, "pause", "p")
        self.cmd(d, "resume", "r")
        seen = len(d.events)
        for _ in range(3):  # the annotation stays; every tick reads it again
            self.cmd(d, "resume", "r")
        assert d.phase == "Canary" and len(d.events) == seen
        assert d.status["lastCommandNonce"] == "r"

    @pytest.mark.parametrize("action", ["promote", "abort", "pause", "resume", "retry", "jump"])
    def test_inapplicable_commands_are_reported_and_change_nothing(self, action):
        d = Driver()
        d.deploy_stable()
        before = copy.deepcopy(d.status)
        self.cmd(d, action)
        assert d.events[-1].reason == "CommandIgnored"
        assert d.status["phase"] == before["phase"] == "Succeeded"
        assert d.status["stable"] == before["stable"]

    def test_parse_command(self):
        assert commands.parse_command("Promote:abc") == commands.Command("promote", "abc")
        assert commands.parse_command("pause") == commands.Command("pause", "pause")
        assert commands.parse_command("") is None

    def test_annotation_and_nonce(self):
        annotations = {commands.COMMAND_ANNOTATION: "abort:x1", "other": "y"}
        cmd = commands.from_annotations(annotations)
        assert cmd == commands.Command("abort", "x1")
        assert commands.from_annotations({}) is None
        assert commands.is_new(cmd, Status(last_command_nonce="x0"))
        assert not commands.is_new(cmd, Status(last_command_nonce="x1"))
        assert not commands.is_new(None, Status())
