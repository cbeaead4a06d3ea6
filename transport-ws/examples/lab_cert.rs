//! Make a lab CA and a server certificate signed by it, for tests and for
//! trying TLS without openssl:
//!
//! ```text
//! cargo run -p simplerpc-ws --example lab_cert -- DIR NAME...
//! ```
//!
//! writes `DIR/ca.pem` (give it to clients as `cafile`), `DIR/cert.pem` and
//! `DIR/key.pem` (the server's `--certfile` and `--keyfile`), the
//! certificate valid for each NAME (host names or IP addresses).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: lab_cert DIR NAME...")?);
    let names: Vec<String> = args.collect();
    if names.is_empty() {
        return Err("usage: lab_cert DIR NAME... (at least one host name or address)".into());
    }
    std::fs::create_dir_all(&dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "simplerpc lab CA");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    println!("wrote ca.pem, cert.pem and key.pem in {}", dir.display());
    Ok(())
}
