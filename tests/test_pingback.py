"""Pingback's pure half: the XML-RPC call and the classification of every reply."""

from __future__ import annotations

import xmlrpc.client

import pytest
from conftest import DATA

from wpnotify.errors import SendError
from wpnotify.pingback import build_call, parse_reply, raise_for_fault


def test_the_call_is_pingback_ping_with_source_and_target() -> None:
    params, method = xmlrpc.client.loads(build_call("https://s.example/p", "https://t.example/é"))
    assert method == "pingback.ping" and params == ("https://s.example/p", "https://t.example/é")


def test_wordpress_success_reply_returns_its_message() -> None:
    message = parse_reply(200, (DATA / "pingback-ok.xml").read_bytes())
    assert message.startswith("Pingback from ") and "registered" in message


def test_fault_48_already_registered_counts_as_sent() -> None:
    assert parse_reply(200, (DATA / "pingback-fault-48.xml").read_bytes()) == \
        "already registered"


def test_wordpress_generic_fault_0_is_retried_a_little() -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(200, (DATA / "pingback-fault-0.xml").read_bytes())
    assert caught.value.code == "fault-0" and not caught.value.permanent


def test_wordpress_flood_fault_429_is_transient_with_a_15_s_hold() -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(200, (DATA / "pingback-fault-429.xml").read_bytes())
    assert caught.value.code == "rate-limited" and caught.value.retry_after == 15.0


@pytest.mark.parametrize("code,permanent", [(16, False), (17, False), (32, True), (33, True),
                                            (49, True), (50, False), (-32601, True),
                                            (12345, False)])
def test_faults_are_classified_per_the_spec(code: int, permanent: bool) -> None:
    with pytest.raises(SendError) as caught:
        raise_for_fault(code, "why")
    assert caught.value.permanent is permanent
    assert "why" in caught.value.message


def test_duplicate_fault_409_counts_as_sent() -> None:
    raise_for_fault(409, "Duplicate comment detected")  # returns: nothing to raise


@pytest.mark.parametrize("status,permanent", [(403, True), (405, True), (404, True),
                                              (500, False), (502, False), (429, False),
                                              (302, True), (400, True)])
def test_http_statuses_are_classified(status: int, permanent: bool) -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(status, b"")
    assert caught.value.permanent is permanent


@pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b"not xml at all",
                                  b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'])
def test_garbage_replies_are_errors_not_crashes(body: bytes) -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(200, body)
    assert caught.value.code == "bad-reply"
