//! TLS on the three listeners (rustls, with ring): one certificate and key for all,
//! client certificates required on the OTLP listeners when `--tls-client-ca` is
//! given (mutual TLS). The files are read again on SIGHUP and when they change, so
//! a renewed certificate is served without a restart; connections already open
//! keep the one they started with.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use anyhow::Context;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tracing::info;

use crate::config::TlsFiles;

/// Which configuration a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// OTLP/gRPC and OTLP/HTTP: client certificates when configured.
    Ingest,
    /// The UI and query API: browsers bring no certificate.
    Query,
}

/// The server's TLS configurations, replaced whole when the files change.
pub struct Tls {
    files: TlsFiles,
    configs: RwLock<Configs>,
    /// When the files were last read (their modification times and sizes).
    stamp: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

struct Configs {
    ingest: Arc<ServerConfig>,
    query: Arc<ServerConfig>,
}

impl Tls {
    /// Reads and checks the files.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Tls>> {
        let stamp = stamps(&files);
        let configs = build(&files)?;
        info!(cert = %files.cert.display(), mutual = files.client_ca.is_some(), "TLS on every listener");
        Ok(Arc::new(Tls {
            files,
            configs: RwLock::new(configs),
            stamp: Mutex::new(stamp),
        }))
    }

    /// An acceptor with the configuration of now.
    pub fn acceptor(&self, listener: Listener) -> TlsAcceptor {
        let configs = self.configs.read().unwrap_or_else(PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(match listener {
            Listener::Ingest => &configs.ingest,
            Listener::Query => &configs.query,
        }))
    }

    /// Reads the files again. On an error the running configuration stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let stamp = stamps(&self.files);
        let configs = build(&self.files)?;
        *self.configs.write().unwrap_or_else(PoisonError::into_inner) = configs;
        *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
        info!(cert = %self.files.cert.display(), "TLS certificate loaded again");
        Ok(())
    }

    /// Whether a file changed since it was last read.
    pub fn changed(&self) -> bool {
        *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) != stamps(&self.files)
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| {
        fs::metadata(path)
            .ok()
            .and_then(|meta| Some((meta.modified().ok()?, meta.len())))
    })
    .collect()
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read PEM certificates from {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

fn build(files: &TlsFiles) -> anyhow::Result<Configs> {
    let provider = Arc::new(ring::default_provider());
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a PEM private key from {}", files.key.display()))?;
    let builder = || {
        ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("no TLS protocol version available")
    };
    let mut query = builder()?
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key.clone_key())
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                files.cert.display(),
                files.key.display()
            )
        })?;
    let mut ingest = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("invalid CA certificate in {}", ca.display()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .context("cannot verify client certificates")?;
            builder()?
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)?
        }
        None => query.clone(),
    };
    for config in [&mut query, &mut ingest] {
        // gRPC needs HTTP/2; browsers and OTLP/HTTP clients may use either.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(Configs {
        ingest: Arc::new(ingest),
        query: Arc::new(query),
    })
}
