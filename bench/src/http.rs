//! The bench's HTTP client: reqwest in plain mode; under `--secure`, HTTP/1.1 over
//! rustls (ring) with the bench's CA and the token on every request, keeping
//! connections alive as reqwest does. (reqwest's own TLS would need a crypto
//! provider in every crate of the workspace that builds a client.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

/// An answer, read whole.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone)]
pub enum Http {
    Plain(reqwest::Client),
    Tls(Arc<TlsClient>),
}

impl Http {
    pub async fn get(&self, url: &str) -> anyhow::Result<Answer> {
        self.send(hyper::Method::GET, url, None, Vec::new()).await
    }

    /// POSTs `body` of `content_type`, with `encoding` as `Content-Encoding`.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        self.send(
            hyper::Method::POST,
            url,
            Some((content_type, encoding)),
            body,
        )
        .await
    }

    async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        content: Option<(&str, Option<&str>)>,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        match self {
            Http::Plain(client) => {
                let mut request = client.request(method, url);
                if let Some((content_type, encoding)) = content {
                    request = request.header("content-type", content_type);
                    if let Some(encoding) = encoding {
                        request = request.header("content-encoding", encoding);
                    }
                }
                let response = request.body(body).send().await?;
                let status = response.status().as_u16();
                Ok(Answer {
                    status,
                    body: response.bytes().await?,
                })
            }
            Http::Tls(client) => client.send(method, url, content, body).await,
        }
    }
}

/// HTTP/1.1 over TLS to the collector, idle connections kept per host.
pub struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    authorization: String,
    idle: Mutex<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>,
}

impl TlsClient {
    /// Trusts `ca_pem` only; sends `token` with every request.
    pub fn new(ca_pem: &str, token: &str) -> anyhow::Result<TlsClient> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            authorization: format!("Bearer {token}"),
            idle: Mutex::new(HashMap::new()),
        })
    }

    async fn connect(&self, authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("cannot connect to {authority}"))?;
        tcp.set_nodelay(true)?;
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
        let tls = self.connector.connect(name, tcp).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        content: Option<(&str, Option<&str>)>,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let uri: hyper::Uri = url.parse()?;
        let authority = uri
            .authority()
            .context("a URL without a host")?
            .as_str()
            .to_string();
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&authority)
            .and_then(Vec::pop);
        let mut sender = match idle {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect(&authority).await?,
        };
        sender.ready().await?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(uri.path_and_query().map_or("/", |pq| pq.as_str()))
            .header(hyper::header::HOST, &authority)
            .header(hyper::header::AUTHORIZATION, &self.authorization);
        if let Some((content_type, encoding)) = content {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
            if let Some(encoding) = encoding {
                request = request.header(hyper::header::CONTENT_ENCODING, encoding);
            }
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(authority)
            .or_default()
            .push(sender);
        Ok(Answer { status, body })
    }
}
