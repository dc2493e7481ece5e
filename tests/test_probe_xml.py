"""Follow-ups to a hostile-input probe of XML replies: a DTD is refused by the parser itself
in whatever encoding expat detects (UTF-16 without a byte order mark or a declaration got
past a search of the decoded text), a receiver's text in a message is one short line, and
the XML-RPC source reads a large reply without copies of it. No network: the seam is a stub."""

from __future__ import annotations

import codecs
import time
import tracemalloc
import xmlrpc.client
from typing import Any, cast

import pytest

from wpnotify import pingback, rpc, trackback, weblogupdates
from wpnotify.errors import SendError, SourceError
from wpnotify.http import Http, Response
from wpnotify.sources.xmlrpc import SeamTransport

# The probe's bomb: 2.6 KB in UTF-16 that expands to 7,000,000 characters.
ENTITIES = ('<!ENTITY a0 "' + "A" * 1000 + '">'
            + "".join(f'<!ENTITY a{i} "' + f"&a{i - 1};" * 10 + '">' for i in range(1, 4)))
RPC_BOMB = (f"<!DOCTYPE m [{ENTITIES}]><methodResponse><params><param><value><string>"
            + "&a3;" * 7 + "</string></value></param></params></methodResponse>")
TB_BOMB = (f"<!DOCTYPE r [{ENTITIES}]><response><error>0</error><message>"
           + "&a3;" * 7 + "</message></response>")
# The ways of writing UTF-16 that expat detects from the first two bytes alone.
UNMARKED = {"utf-16-le": ("", "utf-16-le"), "utf-16-be": ("", "utf-16-be"),
            "space, utf-16-le": (" ", "utf-16-le"), "newline, utf-16-be": ("\n", "utf-16-be")}
XMLRPC_PARSERS = {"pingback": pingback.parse_reply, "update service": weblogupdates.parse_reply}


class OneAnswer:
    """A stand-in for the HTTP seam that answers every POST with the same body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def post(self, url: str, **_: Any) -> Response:
        return Response(url, 200, (("Content-Type", "text/xml"),), self.body)


def transport(body: bytes) -> SeamTransport:
    return SeamTransport(cast(Http, OneAnswer(body)), "http://127.0.0.1:9/xmlrpc.php")


@pytest.mark.parametrize("lead,encoding", UNMARKED.values(), ids=list(UNMARKED))
def test_a_dtd_in_utf16_without_a_byte_order_mark_is_refused_not_expanded(
        lead: str, encoding: str) -> None:
    """Pingback, update-service and trackback replies, and the XML-RPC parser on the raw
    bytes: each refuses the DOCTYPE; nothing is expanded."""
    body = (lead + RPC_BOMB).encode(encoding)
    started = time.perf_counter()
    for parse in XMLRPC_PARSERS.values():
        with pytest.raises(SendError) as caught:
            parse(200, body)
        assert caught.value.code == "bad-reply" and "DTD" in caught.value.message
    with pytest.raises(rpc.DtdRefused):
        rpc.parse(body)  # bytes: expat detects UTF-16 itself
    with pytest.raises(SendError) as caught:
        trackback.parse_reply(200, (lead + TB_BOMB).encode(encoding))
    assert caught.value.code == "unverified"
    assert time.perf_counter() - started < 1.0


def test_the_xmlrpc_source_refuses_a_dtd_in_utf16_without_a_byte_order_mark() -> None:
    with pytest.raises(SourceError) as caught:
        transport(RPC_BOMB.encode("utf-16-le")).request("127.0.0.1", "/xmlrpc.php", b"<x/>")
    assert "answered XML with a DTD" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_the_xmlrpc_sources_parser_refuses_a_dtd_whoever_asks_for_it() -> None:
    """``getparser`` is the Transport's hook: every reader it hands out refuses a DTD."""
    parser, _unmarshaller = transport(b"").getparser()
    with pytest.raises(rpc.DtdRefused):
        parser.feed(RPC_BOMB.encode("utf-16-be"))


def test_utf16_text_after_a_utf8_byte_order_mark_is_refused_as_holding_nul() -> None:
    """A UTF-8 byte order mark, then UTF-16: Python decodes text full of NULs, which expat,
    reading the text as UTF-8 bytes, would have taken for UTF-16 and expanded."""
    for parse in XMLRPC_PARSERS.values():
        with pytest.raises(SendError) as caught:
            parse(200, codecs.BOM_UTF8 + RPC_BOMB.encode("utf-16-le"))
        assert caught.value.code == "bad-reply" and "NUL" in caught.value.message


@pytest.mark.parametrize("lead,encoding", UNMARKED.values(), ids=list(UNMARKED))
def test_a_reply_in_utf16_without_a_byte_order_mark_is_read_as_expat_reads_it(
        lead: str, encoding: str) -> None:
    reply = xmlrpc.client.dumps(("Pingback registered \u00e9",), methodresponse=True)
    body = (lead + reply[reply.index("<methodResponse>"):]).encode(encoding)
    assert pingback.parse_reply(200, body) == "Pingback registered \u00e9"


LONG = "word " * 12000  # 60,000 characters in a 64 KiB reply
SHORT = 300  # characters of it a message may keep


def rpc_reply(value: Any) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True).encode()


def rpc_fault(code: int, text: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True).encode()


def test_a_pingback_receivers_text_is_cut_to_one_short_line() -> None:
    message = pingback.parse_reply(200, rpc_reply(LONG))
    assert len(message) <= SHORT and message.startswith("word word")
    with pytest.raises(SendError) as caught:
        pingback.parse_reply(200, rpc_fault(33, "no\n" + LONG))
    assert len(caught.value.message) < SHORT + 100
    assert "\n" not in caught.value.message and "no word" in caught.value.message


def test_an_update_services_text_is_cut_to_one_short_line() -> None:
    ok = weblogupdates.parse_reply(200, rpc_reply({"flerror": False, "message": LONG}))
    assert len(ok) <= SHORT
    assert len(weblogupdates.parse_reply(200, rpc_reply([LONG]))) <= SHORT
    for body in (rpc_reply({"flerror": True, "message": LONG}), rpc_fault(5, LONG)):
        with pytest.raises(SendError) as caught:
            weblogupdates.parse_reply(200, body)
        assert len(caught.value.message) < SHORT + 100


def test_a_trackback_receivers_text_is_cut_to_one_short_line() -> None:
    for error in ("0", "1"):
        body = f"<response><error>{error}</error><message>{LONG}</message></response>"
        try:
            message = trackback.parse_reply(200, body.encode())
        except SendError as exc:
            message = exc.message
        assert len(message) <= SHORT


def test_the_xmlrpc_source_reads_a_large_reply_without_decoded_copies_of_it() -> None:
    """16 MiB with one character beyond Latin-1 (in a comment, so the reply's values stay
    small): the reader allocates about what expat's own buffer takes (three times the
    longest token), where a DTD search of the decoded text added a Latin-1 and a UCS-4 copy
    and an upper-cased copy of each (768 MB on 64 MiB)."""
    size = 16 << 20
    body = (b"<?xml version='1.0'?><methodResponse><!-- " + b"a" * size
            + "\U0001F600 -->".encode() + rpc_reply([])[rpc_reply([]).index(b"<params>"):])
    source = transport(body)
    tracemalloc.start()
    try:
        assert source.request("127.0.0.1", "/xmlrpc.php", b"<x/>") == ([],)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * size, f"{peak >> 20} MiB allocated reading a {size >> 20} MiB reply"
