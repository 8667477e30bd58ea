"""The walk-through of the README, end to end over HTTP."""

from __future__ import annotations

from conftest import World, check


def test_issue_then_verify_round_trip(world: World) -> None:
    _issuer, credential = world.issued()
    result = world.verify(credential["jwt"])
    assert result["verified"] is True, result
    assert result["status"] == "valid"
    assert check(result, "signature")["result"] == "pass"
    assert check(result, "record")["result"] == "pass"
    assert result["credential"]["achievement"]["name"] == "SQL for Analysts"
    assert result["credential"]["issuer"]["name"] == "Data Academy"
