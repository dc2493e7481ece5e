"""Receivers' quirks end as classified errors (issue 12, item 10), and XML replies are checked
for a DTD after decoding, whatever their encoding (item 15). Pure parsers first, then the
seam against local servers (loopback only)."""

from __future__ import annotations

import resource
import socket
import threading
import time
import xmlrpc.client
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from receivers import Script, raw_server

from wpnotify import pingback, trackback, weblogupdates
from wpnotify.errors import SendError
from wpnotify.http import Http, Response, retry_after
from wpnotify.settings import HttpSettings
from wpnotify.webmention import send as send_webmention

Parse = Callable[[int, bytes], str]
XMLRPC_PARSERS: dict[str, Parse] = {"pingback": pingback.parse_reply,
                                    "update service": weblogupdates.parse_reply}


def fault(code: str, text: str = "<string>x</string>") -> bytes:
    return ('<?xml version="1.0"?><methodResponse><fault><value><struct>'
            f"<member><name>faultCode</name><value>{code}</value></member>"
            f"<member><name>faultString</name><value>{text}</value></member>"
            "</struct></value></fault></methodResponse>").encode()


def success(value: str) -> bytes:
    return ('<?xml version="1.0"?><methodResponse><params><param><value>'
            f"{value}</value></param></params></methodResponse>").encode()


@pytest.mark.parametrize("parse", XMLRPC_PARSERS.values(), ids=list(XMLRPC_PARSERS))
@pytest.mark.parametrize("code", ["<struct></struct>", "<string>48</string>",
                                  "<array><data/></array>", "<boolean>1</boolean>",
                                  "<int>99999999999</int>"])
def test_a_fault_code_that_is_no_integer_is_a_bad_reply(parse: Parse, code: str) -> None:
    with pytest.raises(SendError) as caught:
        parse(200, fault(code))
    assert caught.value.code == "bad-reply" and caught.value.permanent
    assert "fault code" in caught.value.message


def test_a_fault_string_that_is_a_struct_is_still_read() -> None:
    with pytest.raises(SendError) as caught:
        pingback.parse_reply(200, fault("<int>33</int>", "<struct></struct>"))
    assert caught.value.code == "target-not-pingable"


DEEP = success("<array><data><value>" * 1500 + "</value></data></array>" * 1500)


@pytest.mark.parametrize("parse", XMLRPC_PARSERS.values(), ids=list(XMLRPC_PARSERS))
def test_deeply_nested_values_are_refused_without_recursion(parse: Parse) -> None:
    assert len(DEEP) < 64 * 1024  # fits in one reply
    with pytest.raises(SendError) as caught:
        parse(200, DEEP)
    assert caught.value.code == "bad-reply" and "nested" in caught.value.message
    with pytest.raises(SendError) as caught:
        parse(200, fault(DEEP.decode()[DEEP.index(b"<array>"):DEEP.rindex(b"</value>")]))
    assert caught.value.code == "bad-reply"


def test_values_nested_a_little_are_fine() -> None:
    reply = success("<struct><member><name>flerror</name><value><boolean>0</boolean></value>"
                    "</member><member><name>message</name><value><array><data><value>"
                    "<string>ok</string></value></data></array></value></member></struct>")
    assert weblogupdates.parse_reply(200, reply) == "['ok']"


@pytest.mark.parametrize("encoding", ["x-no-such-encoding", "idna", "undefined", "rot13",
                                      "base64"])
def test_an_unknown_xml_encoding_is_a_malformed_reply(encoding: str) -> None:
    declared = f'<?xml version="1.0" encoding="{encoding}"?>'.encode()
    for parse in XMLRPC_PARSERS.values():
        with pytest.raises(SendError) as caught:
            parse(200, declared + success("<string>ok</string>")[21:])
        assert caught.value.code == "bad-reply" and encoding in caught.value.message
    with pytest.raises(SendError) as caught:
        trackback.parse_reply(200, declared + b"<response><error>0</error></response>")
    assert caught.value.code == "unverified"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le",
                                      "utf-16-be", "utf-32", "iso-8859-1"])
def test_replies_in_any_real_encoding_are_read(encoding: str) -> None:
    """Decoded by their byte order mark or declaration, as an XML parser would."""
    name = encoding.replace("-sig", "").replace("-le", "").replace("-be", "")
    reply = success("<string>Pingback registered \u00e9</string>").decode()
    reply = reply.replace('version="1.0"?>', f'version="1.0" encoding="{name}"?>')
    assert pingback.parse_reply(200, reply.encode(encoding)) == "Pingback registered \u00e9"
    tb = f'<?xml version="1.0" encoding="{name}"?><response><error>0</error></response>'
    assert trackback.parse_reply(200, tb.encode(encoding)) == "accepted"


BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'
                  for i in range(1, 9)).replace("&lol0;", "&lol;")
        + "]><methodResponse><params><param><value><string>&lol8;</string></value>"
          "</param></params></methodResponse>")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-be", "utf-32"])
def test_an_entity_bomb_is_refused_in_any_encoding(encoding: str) -> None:
    """The DTD check runs on the decoded text (issue 12, item 15): a UTF-16 bomb once
    reached expat. Memory stays where it was."""
    body = BOMB.replace('version="1.0"?>', f'version="1.0" encoding="{encoding}"?>') \
        .encode(encoding)
    assert len(body) < 64 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    for parse in XMLRPC_PARSERS.values():
        with pytest.raises(SendError) as caught:
            parse(200, body)
        assert caught.value.code == "bad-reply" and "DTD" in caught.value.message
    tb = BOMB.replace("methodResponse><params><param><value><string",
                      "response><error").replace("string></value></param></params>",
                                                 "error>")
    with pytest.raises(SendError) as caught:
        trackback.parse_reply(200, tb.replace('version="1.0"?>', f'version="1.0" encoding="'
                                              f'{encoding}"?>').encode(encoding))
    assert caught.value.code == "unverified"
    assert time.perf_counter() - started < 1.0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 10, f"peak memory grew by {grown_mb:.0f} MB"


@pytest.mark.parametrize("value,expected", [
    ("\u00b2", None), ("\u0661\u0662", None), ("12\u00b2", None), (" 7 ", 7.0),
    ("Thu, 01 Jan 0000 00:00:00 GMT", 0.0), ("Thu, 99 Foo 2026 99:99:99 GMT", None),
    ("9" * 5000, 86400.0), ("-5", None), ("1.5", None)])
def test_retry_after_that_is_no_number_or_date_is_ignored(value: str,
                                                           expected: float | None) -> None:
    """``"²".isdigit()`` is True in Python: only ASCII digits are a number of seconds."""
    assert retry_after(value) == expected


@pytest.mark.parametrize("charset", ["idna", "undefined", "punycode", "rot13", "base64",
                                     "unicode_escape", "x-no-such-charset"])
def test_a_page_in_an_odd_charset_is_read_as_utf8(charset: str) -> None:
    page = Response("http://t.example/", 200,
                    (("Content-Type", f"text/html; charset={charset}"),),
                    "<a href='/caf\u00e9'>\\N{x}".encode())
    assert page.text() == "<a href='/caf\u00e9'>\\N{x}"


def local() -> Http:
    return Http(HttpSettings(allowed_networks=("127.0.0.1/32",)))


def answering(head: bytes) -> Script:
    """Answers every request with ``head`` (status line and headers, exactly as given)."""
    def script(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head + b"Content-Length: 0\r\n\r\n")
    return script


@pytest.mark.parametrize("location", ["http://[", "http://[::1", "http://h:8O80/",
                                      "http://h:99999/", "http://a..b/", "ftp://h/"])
def test_a_malformed_redirect_is_a_permanent_bad_redirect(location: str) -> None:
    head = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n".encode()
    with raw_server(answering(head)) as url, pytest.raises(SendError) as caught:
        local().get(url)
    assert caught.value.code == "bad-redirect" and caught.value.permanent
    assert not caught.value.skip  # the receiver's fault, recorded as failed
    assert "redirected to a URL that cannot be followed" in caught.value.message


def test_a_malformed_307_from_a_webmention_endpoint_is_a_bad_redirect() -> None:
    head = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://[oops\r\n"
    with raw_server(answering(head)) as url, pytest.raises(SendError) as caught:
        send_webmention(local(), url, "https://s.example/p", "https://t.example/")
    assert caught.value.code == "bad-redirect" and caught.value.permanent
    assert caught.value.endpoint == url


def test_a_retry_after_of_superscript_two_from_a_receiver_is_ignored(
        httpserver: HTTPServer) -> None:
    httpserver.expect_request("/rpc", method="POST").respond_with_data(
        "busy", status=503, headers={"Retry-After": "\u00b2"})
    with pytest.raises(SendError) as caught:
        pingback.send(local(), httpserver.url_for("/rpc"), "https://s.example/p",
                      "https://t.example/")
    assert caught.value.code == "http-503" and caught.value.retry_after is None


def test_the_fault_classes_still_hold() -> None:
    """The normalised fault keeps its integer code and text."""
    with pytest.raises(SendError) as caught:
        pingback.parse_reply(200, fault("<i4>17</i4>", "<string>no link</string>"))
    assert caught.value.code == "no-link-in-source" and "no link" in caught.value.message
    assert pingback.parse_reply(200, xmlrpc.client.dumps(
        xmlrpc.client.Fault(48, "dup"), methodresponse=True).encode()) == "already registered"
