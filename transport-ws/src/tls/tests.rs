//! The TLS stream over real sockets: against rustls' own (buffered)
//! implementation as the reference peer, for every cipher suite and both
//! protocol versions, and against itself through the WebSocket framing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConnection, ServerConnection, StreamOwned, SupportedCipherSuite};

use super::*;
use crate::wire::{Incoming, Wire};

/// A CA and a certificate for "localhost" signed by it.
struct Certs {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

fn certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Certs {
        ca: ca.der().clone(),
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
    }
}

/// A provider restricted to `suite` (all of the default ones: `None`).
fn provider_with(suite: Option<SupportedCipherSuite>) -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = provider::default_provider();
    if let Some(s) = suite {
        p.cipher_suites = vec![s];
    }
    Arc::new(p)
}

fn server_cfg(c: &Certs, suite: Option<SupportedCipherSuite>) -> Arc<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider_with(suite))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(c.chain.clone(), key)
        .unwrap();
    cfg.enable_secret_extraction = true;
    Arc::new(cfg)
}

fn client_cfg(c: &Certs, suite: Option<SupportedCipherSuite>) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(c.ca.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider_with(suite))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.enable_secret_extraction = true;
    Arc::new(cfg)
}

/// Every suite of the `ring` provider (TLS 1.3 and 1.2, ECDSA keys).
fn suites() -> Vec<SupportedCipherSuite> {
    use provider::cipher_suite as s;
    vec![
        s::TLS13_AES_128_GCM_SHA256,
        s::TLS13_AES_256_GCM_SHA384,
        s::TLS13_CHACHA20_POLY1305_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

fn timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Our client's stream to `port`.
fn our_client(cfg: &Arc<rustls::ClientConfig>, port: u16) -> Stream {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    timeouts(&sock);
    let mut hs = client_connection(cfg, "localhost").unwrap();
    drive(&mut hs, &mut &sock).unwrap();
    stream(hs, sock).unwrap()
}

/// Our server's stream on the next connection to `l`.
fn our_server(cfg: &Arc<rustls::ServerConfig>, l: &TcpListener) -> Stream {
    let (sock, _) = l.accept().unwrap();
    timeouts(&sock);
    let mut hs = server_connection(cfg).unwrap();
    drive(&mut hs, &mut &sock).unwrap();
    stream(hs, sock).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Read exactly `len` bytes in reads of at most `step` bytes (a small
/// step splits records between reads).
fn read_len(r: &mut impl Read, len: usize, step: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let end = (at + step).min(len);
        match r.read(&mut got[at..end]) {
            Ok(0) => panic!("end of stream after {at} of {len} bytes"),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {at} of {len} bytes: {e}"),
        }
    }
    got
}

const UP: usize = 1_000_003;
const DOWN: usize = 1_500_007;

#[test]
fn our_client_and_rustls_server_agree_for_every_suite_with_key_updates() {
    let certs = certs();
    for suite in suites() {
        let tls13 = suite.tls13().is_some();
        let (l, port) = listener();
        let scfg = server_cfg(&certs, Some(suite));
        let peer = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            timeouts(&sock);
            let conn = ServerConnection::new(scfg).unwrap();
            let mut s = StreamOwned::new(conn, sock);
            let up = read_len(&mut s, UP, 1 << 20);
            let down = pattern(DOWN, 7);
            s.write_all(&down[..DOWN / 2]).unwrap();
            if tls13 {
                // A key update of the peer's own, mid-stream.
                s.conn.refresh_traffic_keys().unwrap();
            }
            s.write_all(&down[DOWN / 2..]).unwrap();
            s.flush().unwrap();
            // What our side sent after its key updates.
            let more = read_len(&mut s, 5000, 1 << 20);
            s.conn.send_close_notify();
            s.flush().unwrap();
            (up, more)
        });
        let mut ours = our_client(&client_cfg(&certs, Some(suite)), port);
        let up = pattern(UP, 1);
        ours.write_all(&up[..UP / 3]).unwrap();
        if tls13 {
            // Ours, asking the peer to update its keys too.
            ours.update_keys(true).unwrap();
        }
        ours.write_all(&up[UP / 3..]).unwrap();
        ours.flush().unwrap();
        // Reads much smaller than a record, and of odd sizes (records
        // split between reads), then large ones (straight into the buffer).
        let mut down = read_len(&mut ours, DOWN / 3, 1000);
        down.extend(read_len(&mut ours, DOWN - DOWN / 3, 200_000));
        assert!(down == pattern(DOWN, 7), "{suite:?}: download differs");
        if tls13 {
            ours.update_keys(false).unwrap();
        }
        ours.write_all(&pattern(5000, 3)).unwrap();
        ours.flush().unwrap();
        // close_notify: the end of the stream.
        let mut rest = [0u8; 16];
        assert_eq!(ours.read(&mut rest).unwrap(), 0, "{suite:?}");
        let (got_up, more) = peer.join().unwrap();
        assert!(got_up == up, "{suite:?}: upload differs");
        assert!(
            more == pattern(5000, 3),
            "{suite:?}: data after key updates differs"
        );
    }
}

#[test]
fn our_server_and_rustls_client_agree_for_every_suite() {
    let certs = certs();
    for suite in suites() {
        let tls13 = suite.tls13().is_some();
        let (l, port) = listener();
        let ccfg = client_cfg(&certs, Some(suite));
        let peer = thread::spawn(move || {
            let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
            timeouts(&sock);
            let mut conn = ClientConnection::new(ccfg, "localhost".try_into().unwrap()).unwrap();
            // Written before the handshake is done: it goes right after the
            // client's Finished, and reaches the server with the handshake.
            conn.writer().write_all(b"early request").unwrap();
            let mut s = StreamOwned::new(conn, sock);
            s.write_all(&pattern(UP, 2)).unwrap();
            if tls13 {
                s.conn.refresh_traffic_keys().unwrap();
            }
            s.write_all(b"tail").unwrap();
            s.flush().unwrap();
            let down = read_len(&mut s, DOWN, 1 << 20);
            // Our server's close_notify (its stream dropped): the end.
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            (down, rest)
        });
        let mut ours = our_server(&server_cfg(&certs, Some(suite)), &l);
        assert_eq!(read_len(&mut ours, 13, 64), b"early request");
        let up = read_len(&mut ours, UP, 70_000);
        assert!(up == pattern(UP, 2), "{suite:?}: upload differs");
        assert_eq!(read_len(&mut ours, 4, 64), b"tail");
        // A write in slices, small ones gathered into records.
        let down = pattern(DOWN, 9);
        let (a, b) = down.split_at(10);
        let (b, c) = b.split_at(3);
        let slices = [
            IoSlice::new(a),
            IoSlice::new(b),
            IoSlice::new(&[]),
            IoSlice::new(c),
        ];
        let mut done = 0;
        while done < DOWN {
            let mut left = Vec::new();
            let mut skip = done;
            for s in &slices {
                if skip >= s.len() {
                    skip -= s.len();
                    continue;
                }
                left.push(IoSlice::new(&s[skip..]));
                skip = 0;
            }
            done += ours.write_vectored(&left).unwrap();
        }
        ours.flush().unwrap();
        drop(ours);
        let (got, rest) = peer.join().unwrap();
        assert!(got == down, "{suite:?}: download differs");
        assert!(rest.is_empty());
    }
}

#[test]
fn a_cut_connection_is_an_end_of_stream_and_a_forged_record_an_error() {
    let certs = certs();
    let (l, port) = listener();
    let scfg = server_cfg(&certs, None);
    let peer = thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        timeouts(&sock);
        let mut s = StreamOwned::new(ServerConnection::new(scfg.clone()).unwrap(), sock);
        s.write_all(b"hello").unwrap();
        s.flush().unwrap();
        // Cut without close_notify.
        let _ = s.sock.shutdown(std::net::Shutdown::Both);
        // A second connection: a record with one bit flipped.
        let (sock, _) = l.accept().unwrap();
        timeouts(&sock);
        let mut conn = ServerConnection::new(scfg).unwrap();
        let mut sock2 = sock;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock2).unwrap();
        }
        conn.writer().write_all(b"a record to spoil").unwrap();
        let mut rec = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut rec).unwrap();
        }
        let last = rec.len() - 20;
        rec[last] ^= 1;
        sock2.write_all(&rec).unwrap();
        // The alert our side sends (or its close).
        let mut sink = Vec::new();
        let _ = sock2.read_to_end(&mut sink);
    });
    let ccfg = client_cfg(&certs, None);
    let mut ours = our_client(&ccfg, port);
    assert_eq!(read_len(&mut ours, 5, 64), b"hello");
    let mut buf = [0u8; 64];
    assert_eq!(ours.read(&mut buf).unwrap(), 0);
    let mut ours = our_client(&ccfg, port);
    // A large buffer: the record is read into it and opened there.
    let mut big = vec![0u8; 1 << 20];
    let e = ours.read(&mut big).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(
        matches!(
            e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
            Some(rustls::Error::DecryptError)
        ),
        "{e}"
    );
    // And it stays failed.
    assert!(ours.read(&mut buf).is_err());
    drop(ours);
    peer.join().unwrap();
}

/// A connected pair of our own wires over TLS (server, client).
fn wire_pair(suite: Option<SupportedCipherSuite>) -> (Wire, Wire) {
    let certs = certs();
    let (l, port) = listener();
    let scfg = server_cfg(&certs, suite);
    let server = thread::spawn(move || our_server(&scfg, &l));
    let client = our_client(&client_cfg(&certs, suite), port);
    let server = server.join().unwrap();
    (
        Wire::server(server, 1 << 30, &[]),
        Wire::client(client, 1 << 30, &[]),
    )
}

/// Send `msgs` on `wire` while reading what the peer sends, until `expect`
/// messages arrived; returns them.
fn exchange(mut wire: Wire, msgs: Vec<Vec<u8>>, expect: usize) -> (Vec<Vec<u8>>, Wire) {
    // Short waits, as a connection's: a stalled write reads meanwhile.
    wire.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    wire.stream()
        .set_write_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    for m in &msgs {
        let mut stalled = |reader: &mut crate::wire::Reader, s: &mut Stream, _: Duration| {
            assert!(Instant::now() < deadline, "stalled for good");
            match reader.read(s) {
                Ok(Incoming::Message(m)) => got.push(m.to_vec()),
                Ok(_) => {}
                Err(e) if e.is_retry() => {}
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
            Ok(())
        };
        wire.write_message(&[m], &mut stalled).unwrap();
    }
    while wire.flush().map(|done| !done).unwrap() {}
    while got.len() < expect {
        assert!(
            Instant::now() < deadline,
            "{} of {expect} messages",
            got.len()
        );
        match wire.read() {
            Ok(Incoming::Message(m)) => got.push(m.to_vec()),
            Ok(_) => {}
            Err(e) if e.is_retry() => {}
            Err(e) => panic!("{e}"),
        }
    }
    (got, wire)
}

#[test]
fn two_peers_writing_large_messages_at_each_other_over_tls_do_not_deadlock() {
    for suite in [
        None,
        Some(provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ] {
        let (server, client) = wire_pair(suite);
        // Much more than the socket buffers and ours together, both ways at once.
        let big_s = pattern(24 << 20, 5);
        let big_c = pattern(20 << 20, 6);
        let (ws, wc) = (big_s.clone(), big_c.clone());
        let s = thread::spawn(move || exchange(server, vec![ws], 1));
        let c = thread::spawn(move || exchange(client, vec![wc], 1));
        let (at_client, _c) = c.join().unwrap();
        let (at_server, _s) = s.join().unwrap();
        assert!(at_client[0] == big_s, "{suite:?}");
        assert!(at_server[0] == big_c, "{suite:?}");
    }
}

#[test]
fn many_small_messages_around_a_large_one_arrive_in_order_over_tls() {
    let (server, client) = wire_pair(None);
    let mut msgs: Vec<Vec<u8>> = (0..300).map(|i| pattern(1 + i * 7, i as u8)).collect();
    msgs.insert(150, pattern(5 << 20, 99));
    msgs.insert(10, pattern(70_000, 98));
    let want = msgs.clone();
    let n = msgs.len();
    let s = thread::spawn(move || exchange(server, Vec::new(), n));
    // (The client's end stays open until the server has read everything.)
    let (echo, _client) = exchange(client, msgs, 0);
    assert!(echo.is_empty());
    let (got, _server) = s.join().unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "message {i} differs ({} vs {} bytes)",
            g.len(),
            w.len()
        );
    }
}

#[test]
fn the_provider_prefers_aes_128_and_keeps_every_suite() {
    use rustls::CipherSuite as S;
    let ours: Vec<S> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
    let mut all: Vec<S> = provider::default_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    assert_eq!(ours[0], S::TLS13_AES_128_GCM_SHA256);
    assert_eq!(ours[1], S::TLS13_AES_256_GCM_SHA384);
    let mut sorted = ours.clone();
    sorted.sort_by_key(|s| u16::from(*s));
    all.sort_by_key(|s| u16::from(*s));
    assert_eq!(sorted, all);
    // And a connection of our own configurations negotiates it.
    let certs = certs();
    let (l, port) = listener();
    let dir = std::env::temp_dir().join(format!("simplerpc-tls-pref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("ca.pem"));
    let pem = |tag: &str, der: &[u8]| {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {tag}-----\n{}\n-----END {tag}-----\n",
            lines.join("\n")
        )
    };
    std::fs::write(&cert, pem("CERTIFICATE", &certs.chain[0])).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", &certs.key)).unwrap();
    std::fs::write(&ca, pem("CERTIFICATE", &certs.ca)).unwrap();
    let scfg = server_config(&cert, &key).unwrap();
    let ccfg = client_config(Some(&ca)).unwrap();
    let peer = thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        timeouts(&sock);
        let mut hs = server_connection(&scfg).unwrap();
        drive(&mut hs, &mut &sock).unwrap();
        let suite = match &hs.conn {
            Unbuffered::Server(s) => s.negotiated_cipher_suite().map(|s| s.suite()),
            Unbuffered::Client(_) => None,
        };
        let mut s = stream(hs, sock).unwrap();
        s.write_all(b"ok").unwrap();
        s.flush().unwrap();
        suite
    });
    let mut ours = our_client(&ccfg, port);
    assert_eq!(read_len(&mut ours, 2, 64), b"ok");
    assert_eq!(peer.join().unwrap(), Some(S::TLS13_AES_128_GCM_SHA256));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn at_the_cipher_limit_tls13_updates_keys_and_tls12_stops() {
    let certs = certs();
    use provider::cipher_suite as s;
    for suite in [
        s::TLS13_AES_128_GCM_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ] {
        let tls13 = suite.tls13().is_some();
        let (l, port) = listener();
        let scfg = server_cfg(&certs, Some(suite));
        let peer = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            timeouts(&sock);
            let mut s = StreamOwned::new(ServerConnection::new(scfg).unwrap(), sock);
            let mut got = Vec::new();
            if let Err(e) = s.read_to_end(&mut got) {
                eprintln!("peer: {e} after {} bytes", got.len());
            }
            got
        });
        let mut ours = our_client(&client_cfg(&certs, Some(suite)), port);
        // Three records to the limit, then 20 records' worth.
        ours.limit_records(3);
        let data = pattern(20 * MAX_PLAIN_TEST, 4);
        let sent = ours.write_all(&data).and_then(|()| ours.flush());
        // Take in the session tickets (closing with unread bytes would
        // reset the connection before the peer read everything).
        ours.tcp()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 16];
        if tls13 {
            let e = ours.read(&mut b).unwrap_err();
            assert!(matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ));
        }
        if tls13 {
            sent.unwrap();
            drop(ours);
            // All of it, sealed under four generations of keys.
            assert!(peer.join().unwrap() == data);
        } else {
            let e = sent.unwrap_err();
            assert!(e.to_string().contains("reconnect"), "{e}");
            drop(ours);
            let got = peer.join().unwrap();
            assert!(got.len() <= 3 * MAX_PLAIN_TEST && data.starts_with(&got));
        }
    }
}

/// The largest plaintext of a record.
const MAX_PLAIN_TEST: usize = 1 << 14;

// ---- hostile records: authenticated, but malformed ----

/// A rustls server that hands its keys over after the handshake, so that
/// the test seals records of its own making: they pass the tag check, so
/// what our side makes of their contents is what is tested.
struct Forger {
    sock: TcpStream,
    key: ring::aead::LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    tls13: bool,
    gcm12: bool,
    /// What our side sends: key, IV, sequence number.
    rx: (ring::aead::LessSafeKey, [u8; 12], u64),
}

/// A ring key of extracted secrets, its IV, and whether it is AES-GCM.
fn aead_key(
    secrets: &rustls::ConnectionTrafficSecrets,
) -> (ring::aead::LessSafeKey, [u8; 12], bool) {
    use ring::aead::{self, LessSafeKey, UnboundKey};
    let (alg, key, iv, gcm) = match secrets {
        rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
            (&aead::AES_128_GCM, key, iv, true)
        }
        rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
            (&aead::AES_256_GCM, key, iv, true)
        }
        rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (&aead::CHACHA20_POLY1305, key, iv, false)
        }
        _ => unreachable!(),
    };
    let key = LessSafeKey::new(UnboundKey::new(alg, key.as_ref()).unwrap());
    (key, iv.as_ref().try_into().unwrap(), gcm)
}

impl Forger {
    fn accept(l: &TcpListener, cfg: Arc<rustls::ServerConfig>) -> Forger {
        let (mut sock, _) = l.accept().unwrap();
        timeouts(&sock);
        let mut conn = ServerConnection::new(cfg).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        // The session tickets (TLS 1.3), sealed by rustls.
        while conn.wants_write() {
            conn.write_tls(&mut sock).unwrap();
        }
        let tls13 = conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let secrets = conn.dangerous_extract_secrets().unwrap();
        let (key, iv, gcm) = aead_key(&secrets.tx.1);
        let (rx_key, rx_iv, _) = aead_key(&secrets.rx.1);
        Forger {
            sock,
            key,
            iv,
            seq: secrets.tx.0,
            tls13,
            gcm12: gcm && !tls13,
            rx: (rx_key, rx_iv, secrets.rx.0),
        }
    }

    /// The TLS 1.3 records of ours in `bytes`, opened: (type, content),
    /// up to the first that does not open.
    fn opened(&mut self, mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut records = Vec::new();
        while self.tls13 && bytes.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
            if bytes.len() < 5 + len {
                break;
            }
            let (key, iv, seq) = &mut self.rx;
            let mut nonce = *iv;
            for (b, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *b ^= s;
            }
            *seq += 1;
            let aad = ring::aead::Aad::from(<[u8; 5]>::try_from(&bytes[..5]).unwrap());
            let mut body = bytes[5..5 + len].to_vec();
            bytes = &bytes[5 + len..];
            let Ok(plain) = key.open_in_place(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                aad,
                &mut body,
            ) else {
                break;
            };
            let Some(at) = plain.iter().rposition(|&b| b != 0) else {
                break;
            };
            records.push((plain[at], plain[..at].to_vec()));
        }
        records
    }

    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// A TLS 1.3 record of this inner plaintext (content, type, padding).
    fn inner(&mut self, inner: &[u8]) -> Vec<u8> {
        let len = inner.len() + 16;
        let mut rec = vec![23, 3, 3];
        rec.extend_from_slice(&(len as u16).to_be_bytes());
        let aad = ring::aead::Aad::from(<[u8; 5]>::try_from(&rec[..5]).unwrap());
        let mut body = inner.to_vec();
        let nonce = ring::aead::Nonce::assume_unique_for_key(self.nonce());
        self.key
            .seal_in_place_append_tag(nonce, aad, &mut body)
            .unwrap();
        self.seq += 1;
        rec.extend_from_slice(&body);
        rec
    }

    /// A record of type `typ` carrying `content`, in either version.
    fn record(&mut self, typ: u8, content: &[u8]) -> Vec<u8> {
        if self.tls13 {
            let mut inner = content.to_vec();
            inner.push(typ);
            return self.inner(&inner);
        }
        let nonce = self.nonce();
        let explicit = if self.gcm12 { 8 } else { 0 };
        let mut rec = vec![typ, 3, 3];
        rec.extend_from_slice(&((explicit + content.len() + 16) as u16).to_be_bytes());
        if self.gcm12 {
            rec.extend_from_slice(&nonce[4..]);
        }
        let mut aad = self.seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&[typ, 3, 3]);
        aad.extend_from_slice(&(content.len() as u16).to_be_bytes());
        let mut body = content.to_vec();
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(aad),
                &mut body,
            )
            .unwrap();
        self.seq += 1;
        rec.extend_from_slice(&body);
        rec
    }
}

/// What our side read on a connection the forger sent `make`'s bytes on:
/// the data, and the error it ended with (`None`: the end of the stream),
/// and (TLS 1.3) the descriptions of the alerts it sent. An error must
/// come again on the next read.
fn read_forged(
    suite: SupportedCipherSuite,
    step: usize,
    make: impl FnOnce(&mut Forger) -> Vec<u8> + Send + 'static,
) -> (Vec<u8>, Option<io::Error>, Vec<u8>) {
    let certs = certs();
    let (l, port) = listener();
    let scfg = server_cfg(&certs, Some(suite));
    let peer = thread::spawn(move || {
        let mut f = Forger::accept(&l, scfg);
        // After our side's first record: what comes with the end of the
        // handshake is rustls' to read (TLS 1.2's last flight is the server's).
        let mut first = [0u8; 5];
        f.sock.read_exact(&mut first).unwrap();
        let mut first = first.to_vec();
        first.resize(5 + usize::from(u16::from_be_bytes([first[3], first[4]])), 0);
        f.sock.read_exact(&mut first[5..]).unwrap();
        if f.tls13 {
            assert_eq!(f.opened(&first), [(23, b"ready".to_vec())]);
        }
        let bytes = make(&mut f);
        f.sock.write_all(&bytes).unwrap();
        let _ = f.sock.shutdown(std::net::Shutdown::Write);
        // Whatever our side answers (alerts, its close), so that closing
        // does not reset the connection before it read everything.
        let mut sink = Vec::new();
        let _ = f.sock.read_to_end(&mut sink);
        let opened = f.opened(&sink);
        opened
            .into_iter()
            .filter(|(typ, _)| *typ == 21)
            .map(|(_, alert)| alert[1])
            .collect::<Vec<u8>>()
    });
    let mut ours = our_client(&client_cfg(&certs, Some(suite)), port);
    ours.write_all(b"ready").unwrap();
    ours.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; step];
    let mut end = None;
    for _ in 0..10_000 {
        match ours.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                let again = ours.read(&mut buf);
                assert!(again.is_err(), "an error must stay: {e}, then {again:?}");
                let w = ours.write(b"x");
                assert!(w.is_err(), "writes fail after {e} too: {w:?}");
                end = Some(e);
                break;
            }
        }
    }
    drop(ours);
    (got, end, peer.join().unwrap())
}

/// Small reads (through the inbox) and a large one (opened in the buffer).
const STEPS: [usize; 2] = [64, 1 << 20];

fn tls13() -> SupportedCipherSuite {
    provider::cipher_suite::TLS13_AES_128_GCM_SHA256
}

/// The `rustls::Error` inside `e`, as text (for messages and matching).
fn tls_error(e: &Option<io::Error>) -> String {
    match e {
        Some(e) => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            format!(
                "{:?}",
                e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
            )
        }
        None => "the end of the stream".into(),
    }
}

#[test]
fn malformed_tls13_records_are_fatal_errors() {
    type Make = fn(&mut Forger) -> Vec<u8>;
    let cases: [(&str, Make); 9] = [
        ("no content type", |f| f.inner(&[0, 0, 0])),
        ("empty inner plaintext", |f| f.inner(&[])),
        ("unknown content type", |f| f.record(99, b"x")),
        ("change_cipher_spec", |f| f.record(20, &[1])),
        ("short alert", |f| f.record(21, &[2])),
        ("long alert", |f| f.record(21, &[1, 0, 0])),
        ("oversized content", |f| {
            f.record(23, &vec![7; (1 << 14) + 1])
        }),
        ("huge handshake message", |f| {
            f.record(22, &[4, 0xff, 0xff, 0xff])
        }),
        ("key update not ending its record", |f| {
            f.record(22, &[24, 0, 0, 1, 0, 24])
        }),
    ];
    for (what, make) in cases {
        for step in STEPS {
            let (got, e, _) = read_forged(tls13(), step, move |f| {
                let mut b = f.record(23, b"before");
                b.extend(make(f));
                b.extend(f.record(23, b"after"));
                b
            });
            assert_eq!(got, b"before", "{what}, reads of {step}");
            assert!(e.is_some(), "{what}, reads of {step}: no error");
            tls_error(&e);
        }
    }
}

#[test]
fn what_follows_close_notify_is_never_read_and_empty_records_are_data() {
    for suite in [
        tls13(),
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ] {
        for step in STEPS {
            let (got, e, _) = read_forged(suite, step, |f| {
                let mut b = f.record(23, b"");
                b.extend(f.record(23, b"one"));
                b.extend(f.record(23, b""));
                b.extend(f.record(23, b"two"));
                b.extend(f.record(21, &[1, 0]));
                b.extend(f.record(23, b"after the end"));
                b.extend(b"\x17\x03\x03\xff\xff garbage");
                b
            });
            assert_eq!(got, b"onetwo", "{suite:?}, reads of {step}");
            assert!(e.is_none(), "{suite:?}, reads of {step}: {e:?}");
        }
    }
}

#[test]
fn malformed_records_are_fatal_errors_in_every_version() {
    type Make = fn(&mut Forger) -> Vec<u8>;
    let cases: [(&str, Make); 6] = [
        ("zero-length ciphertext", |_| {
            b"\x17\x03\x03\x00\x00".to_vec()
        }),
        ("a length past the limit", |_| {
            let mut b = b"\x17\x03\x03\x48\x01".to_vec();
            b.resize(5 + 0x4801, 0);
            b
        }),
        ("a ciphertext shorter than its tag", |_| {
            b"\x17\x03\x03\x00\x0f0123456789abcde".to_vec()
        }),
        ("other version bytes", |f| {
            let mut r = f.record(23, b"x");
            r[2] = 1;
            r
        }),
        ("change_cipher_spec", |f| f.record(20, &[1])),
        ("a fatal alert", |f| f.record(21, &[2, 40])),
    ];
    use provider::cipher_suite as s;
    for suite in [
        tls13(),
        s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        for (what, make) in cases {
            for step in STEPS {
                let (got, e, _) = read_forged(suite, step, move |f| {
                    let mut b = f.record(23, b"before");
                    b.extend(make(f));
                    b.extend(f.record(23, b"after"));
                    b
                });
                assert_eq!(got, b"before", "{suite:?}, {what}, reads of {step}");
                assert!(e.is_some(), "{suite:?}, {what}, reads of {step}: no error");
                tls_error(&e);
            }
        }
    }
}

#[test]
fn tls12_refuses_renegotiation_and_passes_warnings() {
    let suite = provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    for step in STEPS {
        let (got, e, _) = read_forged(suite, step, |f| {
            // A warning (no_renegotiation), then a hello request.
            let mut b = f.record(21, &[1, 100]);
            b.extend(f.record(23, b"data"));
            b.extend(f.record(22, &[0, 0, 0, 0]));
            b.extend(f.record(23, b"after"));
            b
        });
        assert_eq!(got, b"data", "reads of {step}");
        assert!(e.is_some(), "reads of {step}: no error");
    }
}

#[test]
fn an_inner_plaintext_padded_past_the_limit_is_refused() {
    for step in STEPS {
        let (got, e, _) = read_forged(tls13(), step, |f| {
            // 2^14 bytes of content, its type and a byte of padding: one
            // byte more than RFC 8446 §5.4 allows (2^14 + 1).
            let mut inner = vec![7; 1 << 14];
            inner.extend_from_slice(&[23, 0]);
            f.inner(&inner)
        });
        assert!(got.is_empty(), "reads of {step}: {} bytes", got.len());
        assert!(
            tls_error(&e).contains("PeerSentOversizedRecord"),
            "reads of {step}: {e:?}"
        );
    }
}

#[test]
fn other_records_inside_a_fragmented_handshake_message_are_refused() {
    type Make = fn(&mut Forger) -> Vec<u8>;
    let cases: [(&str, Make); 3] = [
        ("application data", |f| f.record(23, b"in between")),
        ("an alert", |f| f.record(21, &[1, 0])),
        ("a zero-length handshake record", |f| f.record(22, &[])),
    ];
    for (what, make) in cases {
        for step in STEPS {
            let (got, e, _) = read_forged(tls13(), step, move |f| {
                let mut b = f.record(23, b"before");
                // The first two bytes of a key update, then something else.
                b.extend(f.record(22, &[24, 0]));
                b.extend(make(f));
                b.extend(f.record(22, &[0, 1, 0]));
                b.extend(f.record(23, b"after"));
                b
            });
            assert_eq!(got, b"before", "{what}, reads of {step}");
            assert!(e.is_some(), "{what}, reads of {step}: no error");
            tls_error(&e);
        }
    }
    // Nor does a zero-length handshake record pass on its own.
    for step in STEPS {
        let (got, e, _) = read_forged(tls13(), step, |f| {
            let mut b = f.record(22, &[]);
            b.extend(f.record(23, b"after"));
            b
        });
        assert!(got.is_empty() && e.is_some(), "reads of {step}: {got:?}");
    }
}

#[test]
fn used_up_sequence_numbers_seal_nothing_more_and_fail_for_good() {
    let certs = certs();
    let suite = provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256;
    let (l, port) = listener();
    let scfg = server_cfg(&certs, Some(suite));
    let peer = thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        timeouts(&sock);
        let mut s = StreamOwned::new(ServerConnection::new(scfg).unwrap(), sock);
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    });
    let mut ours = our_client(&client_cfg(&certs, Some(suite)), port);
    ours.write_all(b"first").unwrap();
    ours.flush().unwrap();
    ours.exhaust_sequence();
    // The last sequence number is never used: the key update due there
    // is not sealed (a record sealed but not counted would be sealed
    // again with the same nonce), and the connection stays failed.
    let e = ours.write(b"second").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("exhausted"), "{e}");
    assert_eq!(
        ours.buffered(),
        0,
        "a record was sealed past the last number"
    );
    assert!(ours.write(b"third").is_err());
    assert!(ours.flush().is_err());
    assert!(ours.update_keys(false).is_err());
    assert_eq!(ours.buffered(), 0);
    let mut b = [0u8; 16];
    assert!(ours.read(&mut b).is_err());
    drop(ours);
    let got = peer.join().unwrap();
    assert_eq!(got, b"first");
}

#[test]
fn a_refused_record_is_answered_with_the_alert_that_says_why() {
    type Make = fn(&mut Forger) -> Vec<u8>;
    // RFC 8446 §5.2, §5.4, §5: bad_record_mac (20), record_overflow (22),
    // unexpected_message (10).
    let cases: [(&str, Make, u8); 4] = [
        (
            "a bad tag",
            |f| {
                let mut r = f.record(23, b"x");
                r[6] ^= 1;
                r
            },
            20,
        ),
        (
            "padding past the limit",
            |f| {
                let mut inner = vec![7; 1 << 14];
                inner.extend_from_slice(&[23, 0]);
                f.inner(&inner)
            },
            22,
        ),
        (
            "an outer change_cipher_spec",
            |_| b"\x14\x03\x03\x00\x01\x01".to_vec(),
            10,
        ),
        ("no content type", |f| f.inner(&[0, 0]), 10),
    ];
    for (what, make, alert) in cases {
        for step in STEPS {
            let (_, e, alerts) = read_forged(tls13(), step, make);
            assert!(e.is_some(), "{what}, reads of {step}: no error");
            assert_eq!(alerts, [alert], "{what}, reads of {step}: {e:?}");
        }
    }
}

#[test]
fn a_bad_key_update_is_answered_with_the_alert_rfc_8446_names() {
    type Make = fn(&mut Forger) -> Vec<u8>;
    // §4.6.3: a request_update other than 0 or 1 is illegal_parameter
    // (47); §5.1: a key update not at the end of its record is
    // unexpected_message (10); a body of another length, decode_error (50).
    let cases: [(&str, Make, u8); 3] = [
        ("request_update 2", |f| f.record(22, &[24, 0, 0, 1, 2]), 47),
        (
            "not ending its record",
            |f| f.record(22, &[24, 0, 0, 1, 0, 24]),
            10,
        ),
        (
            "a body of two bytes",
            |f| f.record(22, &[24, 0, 0, 2, 0, 0]),
            50,
        ),
    ];
    for (what, make, alert) in cases {
        let (_, e, alerts) = read_forged(tls13(), 64, make);
        assert!(e.is_some(), "{what}: no error");
        assert_eq!(alerts, [alert], "{what}: {e:?}");
    }
}

#[test]
fn data_and_close_notify_with_the_last_handshake_flight_arrive() {
    let certs = certs();
    use provider::cipher_suite as s;
    for suite in [
        s::TLS13_AES_128_GCM_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ] {
        let (l, port) = listener();
        let ccfg = client_cfg(&certs, Some(suite));
        let peer = thread::spawn(move || {
            let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
            timeouts(&sock);
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut conn = ClientConnection::new(ccfg, name).unwrap();
            while conn.is_handshaking() {
                while conn.wants_write() {
                    conn.write_tls(&mut sock).unwrap();
                }
                conn.read_tls(&mut sock).unwrap();
                conn.process_new_packets().unwrap();
            }
            // The client's Finished (TLS 1.3), data and close_notify: one
            // flight, one write.
            conn.writer().write_all(b"request").unwrap();
            conn.send_close_notify();
            let mut flight = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut flight).unwrap();
            }
            sock.write_all(&flight).unwrap();
            let mut s = StreamOwned::new(conn, sock);
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        });
        let (sock, _) = l.accept().unwrap();
        timeouts(&sock);
        let mut hs = server_connection(&server_cfg(&certs, Some(suite))).unwrap();
        drive(&mut hs, &mut &sock).unwrap();
        let mut ours = stream(hs, sock).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..100 {
            match ours.read(&mut buf).unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(got, b"request", "{suite:?}");
        ours.write_all(b"answer").unwrap();
        ours.flush().unwrap();
        drop(ours);
        assert_eq!(peer.join().unwrap(), b"answer", "{suite:?}");
    }
}
