//! TLS for the API (`api: {tls: {cert, key}}`): rustls (the ring
//! provider), a PEM certificate chain and private key read at start. The
//! listener hands axum a stream once its handshake is done; a handshake
//! that fails or takes over 10 s drops that connection only.

use super::ApiStartError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// The `tls:` block: PEM files (absolute paths, or relative to the
/// directory `serve` runs in).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsConfig {
    /// Reads the files and builds the acceptor.
    pub fn acceptor(&self) -> Result<TlsAcceptor, ApiStartError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            ApiStartError::Config(format!("tls {what}: {e}"))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect)
            .map_err(|e| bad(&format!("cert {}", self.cert.display()), &e))?;
        if certs.is_empty() {
            return Err(bad(
                &format!("cert {}", self.cert.display()),
                &"no certificate in the file",
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| bad(&format!("key {}", self.key.display()), &e))?;
        // The only provider built in is ring (no aws-lc C build).
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad("cert and key", &e))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A TCP listener whose connections are TLS.
pub struct TlsListener {
    /// The TCP listener.
    pub tcp: TcpListener,
    /// The TLS acceptor.
    pub acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("api: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::info!("api: TLS handshake with {addr} failed: {e}"),
                Err(_) => tracing::info!("api: TLS handshake with {addr} timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
