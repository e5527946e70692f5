//! Cluster certificates: a CA per cluster, a certificate per member (rcgen).
//!
//! These are the library halves of `sair certs init --out DIR` ([`init_ca`]) and
//! `sair certs issue --ca DIR --name NAME --out DIR` ([`issue`]); the `sair` CLI calls them.
//! Private keys are written with mode 0600. Every member certificate names the member and the
//! shared server name [`MESH_SERVER_NAME`], which is what dialling members verify (a member is
//! trusted because the cluster CA signed it, whatever its address).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::id::validate_name;

/// The TLS server name every member certificate carries and every dialler checks.
pub const MESH_SERVER_NAME: &str = "sair-mesh";
/// The CA's common name; [`issue`] rebuilds the issuer from it and the CA key.
pub const CA_COMMON_NAME: &str = "sair mesh cluster ca";
/// File names inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} exists; refusing to overwrite a cluster CA (remove it first)")]
    Exists { path: PathBuf },
    #[error("{path} holds no usable {what}: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Name(#[from] crate::error::ConfigError),
}

/// Which of a member's three files an error of [`MeshTls::from_files`] is about, so that a
/// binary names the flag that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFile {
    Cert,
    Key,
    Ca,
}

impl MemberFile {
    /// The flag every SAIR binary on the mesh takes this file from (`sair_service::mesh`).
    pub fn flag(self) -> &'static str {
        match self {
            MemberFile::Cert => "--cert",
            MemberFile::Key => "--key",
            MemberFile::Ca => "--ca",
        }
    }
}

impl CertError {
    /// The file this error of [`MeshTls::from_files`]`(cert, key, ca)` is about.
    pub fn member_file(&self, key: &Path, ca: &Path) -> MemberFile {
        match self {
            CertError::Pem { what, .. } if what.contains("CA") => MemberFile::Ca,
            CertError::Pem { what, .. } if what.contains("key") => MemberFile::Key,
            CertError::Pem { path, .. } | CertError::Io { path, .. } if path == ca => {
                MemberFile::Ca
            }
            CertError::Pem { path, .. } | CertError::Io { path, .. } if path == key => {
                MemberFile::Key
            }
            _ => MemberFile::Cert,
        }
    }
}

/// Where [`init_ca`] wrote the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where [`issue`] wrote a member's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A member's TLS material: its chain, its key and the cluster CA it trusts.
#[derive(Debug)]
pub struct MeshTls {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca: CertificateDer<'static>,
}

impl Clone for MeshTls {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            ca: self.ca.clone(),
        }
    }
}

impl MeshTls {
    /// Loads `--cert`, `--key` and `--ca` (PEM). Each error names its file.
    pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> Result<Self, CertError> {
        let pem_err = |path: &Path, what: &'static str| {
            let path = path.to_path_buf();
            move |e: rustls::pki_types::pem::Error| CertError::Pem {
                path,
                what,
                reason: e.to_string(),
            }
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(pem_err(cert, "certificate"))?;
        if chain.is_empty() {
            return Err(CertError::Pem {
                path: cert.to_path_buf(),
                what: "certificate",
                reason: "no CERTIFICATE block".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(pem_err(key, "private key"))?;
        let ca = CertificateDer::from_pem_file(ca).map_err(pem_err(ca, "CA certificate"))?;
        Ok(Self { chain, key, ca })
    }
}

fn ca_params() -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CA_COMMON_NAME);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn member_params(name: &str) -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned(), MESH_SERVER_NAME.to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

/// An in-memory cluster CA (tests, the local demo, and the two functions below).
pub struct ClusterCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    pub fn generate() -> Result<Self, CertError> {
        let key = rcgen::KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// Rebuilds the issuer from a CA key and the CA certificate's PEM (the certificate is kept
    /// as the trust anchor; its subject is [`CA_COMMON_NAME`], so leaves chain to it).
    fn from_key_pem(key_pem: &str, key_path: &Path) -> Result<Self, CertError> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| CertError::Pem {
            path: key_path.to_path_buf(),
            what: "CA private key",
            reason: e.to_string(),
        })?;
        let cert = ca_params()?.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Issues a member's TLS material in memory.
    pub fn issue(&self, name: &str) -> Result<MeshTls, CertError> {
        validate_name(name)?;
        let key = rcgen::KeyPair::generate()?;
        let cert = member_params(name)?.signed_by(&key, &self.cert, &self.key)?;
        Ok(MeshTls {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            ca: self.cert_der(),
        })
    }

    fn issue_pem(&self, name: &str) -> Result<(String, String), CertError> {
        validate_name(name)?;
        let key = rcgen::KeyPair::generate()?;
        let cert = member_params(name)?.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    let io = |action| {
        move |source| CertError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io("create"))?;
    // `mode` applies only to a new file; an existing one is narrowed too.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io("set permissions on"))?;
    f.write_all(contents.as_bytes()).map_err(io("write"))?;
    f.sync_all().map_err(io("sync"))?;
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// `sair certs init --out DIR`: a new cluster CA in `DIR/ca.pem` and `DIR/ca.key` (0600).
/// Refuses to overwrite an existing CA key.
pub fn init_ca(out: &Path) -> Result<CaFiles, CertError> {
    create_dir(out)?;
    let files = CaFiles {
        cert: out.join(CA_CERT_FILE),
        key: out.join(CA_KEY_FILE),
    };
    if files.key.exists() {
        return Err(CertError::Exists { path: files.key });
    }
    let ca = ClusterCa::generate()?;
    write_file(&files.key, &ca.key.serialize_pem(), 0o600)?;
    write_file(&files.cert, &ca.cert.pem(), 0o644)?;
    Ok(files)
}

/// `sair certs issue --ca DIR --name NAME --out DIR`: `OUT/NAME.pem` and `OUT/NAME.key` (0600),
/// signed by the CA in `CA_DIR`.
pub fn issue(ca_dir: &Path, name: &str, out: &Path) -> Result<MemberFiles, CertError> {
    validate_name(name)?;
    let key_path = ca_dir.join(CA_KEY_FILE);
    let key_pem = fs::read_to_string(&key_path).map_err(|source| CertError::Io {
        action: "read",
        path: key_path.clone(),
        source,
    })?;
    let ca = ClusterCa::from_key_pem(&key_pem, &key_path)?;
    let (cert, key) = ca.issue_pem(name)?;
    create_dir(out)?;
    let files = MemberFiles {
        cert: out.join(format!("{name}.pem")),
        key: out.join(format!("{name}.key")),
    };
    write_file(&files.key, &key, 0o600)?;
    write_file(&files.cert, &cert, 0o644)?;
    Ok(files)
}

#[cfg(test)]
mod tests;
