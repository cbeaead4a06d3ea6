"""TLS end to end: ``python -m simplerpc.server --certfile --keyfile`` and
``connect("wss://...", cafile=...)``, with a lab CA made here (the
``cryptography`` package: scripts/test.sh installs it).

A round trip with a large array, a CA that did not sign the server's
certificate, a plain client of the TLS server and a TLS client of a plain
server: each refused with an error that says why, within bounded time.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest

import simplerpc
from simplerpc import materialize

HOST = "127.0.0.1"


def simplerpc_server_argv() -> list:
    return [sys.executable, "-m", "simplerpc.server", "--host", HOST, "--port", "0"]

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - a missing install fails loudly
    pytest.fail(
        f"the cryptography package is not importable by {sys.executable}: "
        "scripts/test.sh installs it (pip install cryptography)",
        pytrace=False,
    )

# Every connect attempt here must end within this (a hang fails the test).
BOUND = 60.0


def _lab_ca(directory: Path, names: Tuple[str, ...]) -> Dict[str, Path]:
    """A CA and a server certificate for ``names`` signed by it, as PEM
    files ``ca.pem``, ``cert.pem``, ``key.pem`` in ``directory``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"simplerpc test CA {directory.name}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _bounded(what: str, f: Callable[[], Any]) -> Any:
    """Run ``f`` on a thread; fail if it takes over BOUND seconds (a hang)."""
    out: Dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = f()
        except BaseException as e:  # handed to the test thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(BOUND)
    assert not t.is_alive(), f"{what} did not end within {BOUND:.0f} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return _lab_ca(tmp_path_factory.mktemp("lab"), ("localhost", HOST))


@pytest.fixture(scope="module")
def tls_server(start_server: Any, lab: Dict[str, Path]) -> Any:
    argv = simplerpc_server_argv() + ["--certfile", str(lab["cert"]), "--keyfile", str(lab["key"])]
    with start_server(argv) as s:
        yield s


def test_the_startup_lines_say_wss(tls_server: Any) -> None:
    out = tls_server.output
    assert f"Serving on wss://{HOST}:{tls_server.port}" in out, out
    assert "UNENCRYPTED" not in out, out


def test_the_startup_lines_tell_a_client_to_speak_tls(
    tls_server: Any, lab: Dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The export lines alone make connect() speak ws://, which this server
    # refuses; the lines after them say what else a client passes.
    for _ in range(600):  # the lines after the exports may still be on their way
        if "connect(tls=True, cafile=" in tls_server.output:
            break
        time.sleep(0.1)
    assert "connect(tls=True, cafile=" in tls_server.output, tls_server.output
    monkeypatch.setenv("SIMPLERPC_HOST", HOST)
    monkeypatch.setenv("SIMPLERPC_PORT", str(tls_server.port))
    monkeypatch.setenv("SIMPLERPC_TOKEN", tls_server.token)
    with pytest.raises(simplerpc.ConnectionError, match="TLS only"):
        _bounded("a client with only the exports", lambda: simplerpc.connect())
    conn = _bounded("a client following the startup lines", lambda: simplerpc.connect(tls=True, cafile=str(lab["ca"])))
    try:
        assert materialize(conn.builtins.len([1, 2, 3])) == 3
    finally:
        conn.disconnect()


def test_a_round_trip_over_wss_with_a_large_array(tls_server: Any, lab: Dict[str, Path]) -> None:
    np = pytest.importorskip("numpy")
    url = f"wss://{HOST}:{tls_server.port}"
    with _bounded("connect", lambda: simplerpc.connect(url, token=tls_server.token, cafile=str(lab["ca"]))) as conn:
        assert materialize(conn.modules.builtins.len([1, 2, 3])) == 3
        a = np.arange(3 << 20, dtype=np.float64)  # 24 MiB each way
        back = materialize(conn.modules.numpy.add(a, 1.0))
        assert back.shape == a.shape and back[0] == 1.0 and back[-1] == a[-1] + 1.0
    # The keyword form, by a name the certificate lists.
    with simplerpc.connect("localhost", tls_server.port, tls_server.token, tls=True, cafile=lab["ca"]) as conn:
        assert materialize(conn.modules.builtins.abs(-4)) == 4


def test_a_wrong_ca_is_refused_naming_host_and_reason(tls_server: Any, tmp_path: Path) -> None:
    other = _lab_ca(tmp_path / "other", ("localhost", HOST))
    url = f"wss://{HOST}:{tls_server.port}"
    with pytest.raises(ConnectionError) as e:
        _bounded("connect", lambda: simplerpc.connect(url, token=tls_server.token, cafile=str(other["ca"])))
    text = str(e.value)
    assert HOST in text and "unknown issuer" in text and "cafile" in text, text


def test_without_a_cafile_the_platform_roots_refuse_a_lab_certificate(tls_server: Any) -> None:
    url = f"wss://{HOST}:{tls_server.port}"
    with pytest.raises((ConnectionError, ValueError)) as e:
        _bounded("connect", lambda: simplerpc.connect(url, token=tls_server.token))
    text = str(e.value)
    assert "unknown issuer" in text or "no trusted root" in text, text


def test_a_plain_client_of_the_tls_server_is_told_to_use_wss(tls_server: Any) -> None:
    with pytest.raises(ConnectionError) as e:
        _bounded("connect", lambda: simplerpc.connect(HOST, tls_server.port, tls_server.token))
    assert "wss://" in str(e.value), str(e.value)


def test_a_tls_client_of_a_plain_server_is_told_it_is_plain(server: Any, lab: Dict[str, Path]) -> None:
    url = f"wss://{HOST}:{server.port}"
    with pytest.raises(ConnectionError) as e:
        _bounded("connect", lambda: simplerpc.connect(url, token=server.token, cafile=str(lab["ca"])))
    assert "plain ws://" in str(e.value), str(e.value)
    # and the plain server still serves plain clients
    with simplerpc.connect(f"ws://{HOST}:{server.port}", token=server.token) as conn:
        assert materialize(conn.modules.builtins.len("abc")) == 3


def test_urls_carry_no_token_and_need_a_scheme() -> None:
    with pytest.raises(ValueError, match="token="):
        simplerpc.connect("wss://h:1/?token=abc", token="x")
    with pytest.raises(ValueError, match="ws://"):
        simplerpc.connect("http://h:1", token="x")
    with pytest.raises(ValueError, match="contradicts"):
        simplerpc.connect("ws://h:1", token="x", tls=True)


def test_a_refused_url_does_not_repeat_its_token() -> None:
    # The server prints its URL with the token; pasted into connect(), the
    # refusal must not copy the token into a traceback or a log.
    for url in ("wss://h:1/?token=s3cretTOKEN", "ws://h:1/x?a=1&token=s3cretTOKEN#f", "https://h:1/?token=s3cretTOKEN"):
        with pytest.raises(ValueError) as refused:
            simplerpc.connect(url, token="x")
        assert "s3cretTOKEN" not in str(refused.value), str(refused.value)
        assert "h:1" in str(refused.value), str(refused.value)


def test_certfile_without_keyfile_is_refused() -> None:
    r = subprocess.run(
        simplerpc_server_argv() + ["--certfile", "cert.pem"],
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert r.returncode != 0 and "--keyfile" in r.stderr, r.stderr


def test_fd_refuses_the_tls_flags_and_ignores_the_tls_variables(lab: Dict[str, Path]) -> None:
    import os

    # The flags with --fd (a socketpair to the parent) are refused, saying why.
    r = subprocess.run(
        simplerpc_server_argv() + ["--fd", "0", "--certfile", str(lab["cert"]), "--keyfile", str(lab["key"])],
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert r.returncode != 0 and "TLS does not apply" in r.stderr, r.stderr
    # A spawned child inherits its parent's environment: a server's TLS
    # variables there, even half of them, must not stop it.
    env = dict(os.environ, SIMPLERPC_SERVER_CERTFILE=str(lab["cert"]))
    env.pop("SIMPLERPC_SERVER_KEYFILE", None)
    with simplerpc.spawn(env=env) as conn:
        assert simplerpc.materialize(conn.eval("6 * 7")) == 42


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_a_wss_url_to_nothing_is_a_connection_refused_error(lab: Dict[str, Path]) -> None:
    url = f"wss://{HOST}:{_free_port()}"
    with pytest.raises(simplerpc.ConnectionRefusedError) as e:
        _bounded("connect", lambda: simplerpc.connect(url, token="t", cafile=str(lab["ca"])))
    assert isinstance(e.value, ConnectionRefusedError)
    # Host and port came from the URL: no hint about the SIMPLERPC_* variables.
    assert "SIMPLERPC_HOST" not in str(e.value), str(e.value)


def test_a_silent_listener_over_wss_is_a_connect_timeout(lab: Dict[str, Path]) -> None:
    import socket

    with socket.socket() as silent:  # accepts TCP (the backlog), never answers TLS
        silent.bind((HOST, 0))
        silent.listen(1)
        url = f"wss://{HOST}:{silent.getsockname()[1]}"
        with pytest.raises(simplerpc.ConnectTimeoutError) as e:
            _bounded("connect", lambda: simplerpc.connect(url, token="t", cafile=str(lab["ca"]), timeout=0.3))
    assert isinstance(e.value, TimeoutError)


def test_the_tls_files_may_come_from_the_server_variables(lab: Dict[str, Path]) -> None:
    import os
    import signal

    env = dict(os.environ, SIMPLERPC_SERVER_CERTFILE=str(lab["cert"]))
    env.pop("SIMPLERPC_SERVER_KEYFILE", None)
    half = subprocess.run(simplerpc_server_argv(), capture_output=True, text=True, timeout=BOUND, env=env)
    assert half.returncode != 0 and "SIMPLERPC_SERVER_KEYFILE" in half.stderr, half.stderr

    env["SIMPLERPC_SERVER_KEYFILE"] = str(lab["key"])
    proc = subprocess.Popen(simplerpc_server_argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        def startup() -> str:
            lines = []
            for _ in range(100):  # the startup lines, up to the token's export
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    break
                lines.append(line)
                if "export SIMPLERPC_TOKEN=" in line:
                    break
            return "".join(lines)

        out = _bounded("the server's startup lines", startup)
        assert "Serving on wss://" in out, out
        assert "certfile (from $SIMPLERPC_SERVER_CERTFILE)" in out, out
        assert "keyfile (from $SIMPLERPC_SERVER_KEYFILE)" in out, out
        port = int(out.split(f"Serving on wss://{HOST}:")[1].split()[0])
        token = out.split("export SIMPLERPC_TOKEN='")[1].split("'")[0]
        with _bounded("connect", lambda: simplerpc.connect(f"wss://{HOST}:{port}", token=token, cafile=str(lab["ca"]))) as conn:
            assert materialize(conn.modules.builtins.len("abcd")) == 4
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=BOUND)


def test_a_signal_during_the_tls_handshake_does_not_fail_the_connect(tls_server: Any, lab: Dict[str, Path]) -> None:
    """A handled signal (a profiler's timer, SIGUSR1) that interrupts the
    client's wait for the server's TLS answer: connect reads again, as over
    plain ws:// (it failed with 'Interrupted system call')."""
    import signal
    import socket
    import time

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    main = threading.main_thread().ident
    handled = threading.Event()
    # A relay to the server that holds the ClientHello back until the
    # client, waiting for the answer, has been sent a signal.
    relay = socket.socket()
    relay.bind((HOST, 0))
    relay.listen(1)

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        relay.settimeout(BOUND)
        client, _ = relay.accept()
        client.settimeout(BOUND)
        hello = client.recv(1 << 16)  # the ClientHello: the client now waits
        time.sleep(0.2)
        signal.pthread_kill(main, signal.SIGUSR1)
        # Python runs the handler only once connect returns; the read the
        # signal interrupted is over by now.
        time.sleep(0.3)
        upstream = socket.create_connection((HOST, tls_server.port), timeout=BOUND)
        upstream.sendall(hello)
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        pipe(upstream, client)

    old = signal.signal(signal.SIGUSR1, lambda *_: handled.set())
    relayer = threading.Thread(target=serve, daemon=True)
    relayer.start()
    try:
        url = f"wss://{HOST}:{relay.getsockname()[1]}"
        with simplerpc.connect(url, token=tls_server.token, cafile=str(lab["ca"]), timeout=BOUND) as conn:
            assert materialize(conn.eval("6 * 7")) == 42
    finally:
        signal.signal(signal.SIGUSR1, old)
        relay.close()
    assert handled.is_set(), "the signal was delivered"
