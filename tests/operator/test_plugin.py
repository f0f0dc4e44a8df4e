"""The plugin's views are rendered from a status the state machine produced."""

from __future__ import annotations

from md_factories import Driver, body
from modeldeploy_operator import plugin
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.rollout import commands


def canary_object():
    d = Driver()
    d.deploy_stable()
    d.change("2.0.0")
    d.tick(1, stable_ready=True)
    d.tick(1, stable_ready=True, candidate_ready=True)
    d.analyse(Verdict.PASS)
    d.analyse(Verdict.PASS)
    obj = body("2.0.0")
    obj["status"] = d.status
    return obj


def test_status_shows_phase_weight_step_and_measurements():
    text = plugin.render_status(canary_object())
    assert "Phase:      Canary" in text
    assert "Weight:     50% canary, 0% mirrored" in text
    assert "Step:       2/2" in text
    assert "Candidate:  2.0.0 fraud-" in text
    assert "error-rate" in text and "Pass" in text
    assert "Ready" in text and "RolloutInProgress" in text


def test_history_table():
    lines = plugin.render_history(canary_object()).splitlines()
    assert lines[0].split() == ["TIME", "VERSION", "REVISION", "RESULT", "MESSAGE"]
    assert "1.0.0" in lines[1] and "Promoted" in lines[1]


def test_command_value_round_trips_through_the_operator_parser():
    value = plugin.command_value("pause", "abc")
    assert commands.parse_command(value) == commands.Command("pause", "abc")
    a, b = plugin.command_value("resume"), plugin.command_value("resume")
    assert a != b  # every invocation is a new command


def test_every_action_has_a_subcommand():
    p = plugin.parser()
    for action in commands.COMMANDS:
        assert p.parse_args([action, "x"]).action == action
    assert p.parse_args(["status", "x", "--watch"]).watch


def test_namespace_flag_before_or_after_the_subcommand():
    parser = plugin.parser
    before = parser().parse_args(["-n", "team", "status", "iris"])
    after = parser().parse_args(["status", "iris", "-n", "team"])
    neither = parser().parse_args(["promote", "iris"])
    assert before.namespace == after.namespace == "team"
    assert neither.namespace is None and neither.kubeconfig is None
