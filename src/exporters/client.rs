//! What the OTLP exporters' clients share: the collector's `tls` block, as a rustls client
//! config, and `compression`.

use crate::config::InvalidSetting;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// `compression`: gzip by default, as in current collectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

/// The collector's client `tls` block.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Certificates to trust besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for servers that ask for one.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Plain HTTP is sent to `http://` URLs whatever this says; accepted for compatibility.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub server_name_override: String,
    #[serde(default)]
    pub min_version: Option<Value>,
    #[serde(default)]
    pub max_version: Option<Value>,
}

impl TlsSettings {
    /// What cannot work, found before start (paths below `tls`).
    pub fn check(&self) -> Vec<InvalidSetting> {
        let mut invalid = Vec::new();
        if self.insecure_skip_verify {
            invalid.push(InvalidSetting::new(
                "insecure_skip_verify",
                true,
                "false: turning off certificate checks is not supported; name the server's CA in tls.ca_file",
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            invalid.push(InvalidSetting::rule(
                "",
                "cert_file and key_file go together: give both or neither",
            ));
        }
        if !self.server_name_override.is_empty() {
            invalid.push(InvalidSetting::new(
                "server_name_override",
                &self.server_name_override,
                "no value: the name in the endpoint is the one checked",
            ));
        }
        invalid
    }

    /// The system's roots, or only `ca_file`'s (as the collector does), and a client
    /// certificate when one is given.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        use hyper_rustls::ConfigBuilderExt;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match &self.ca_file {
            Some(path) => {
                let in_file =
                    |e: &dyn std::fmt::Display| format!("tls.ca_file {}: {e}", path.display());
                let mut roots = rustls::RootCertStore::empty();
                for certificate in CertificateDer::pem_file_iter(path).map_err(|e| in_file(&e))? {
                    roots
                        .add(certificate.map_err(|e| in_file(&e))?)
                        .map_err(|e| in_file(&e))?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder
                .with_native_roots()
                .map_err(|e| format!("cannot load the system's CA certificates: {e}"))?,
        };
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("tls.cert_file {}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("tls.key_file {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("tls.cert_file: {e}"))
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }
}
