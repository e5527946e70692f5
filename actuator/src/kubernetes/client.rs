//! Building the `kube::Client` the actuator and the Lease driver share.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeError;

/// Longest a single API call may take to answer. Without it a call to a hung API server
/// would hold the coordinator's loop until the TCP connection dies; 15 s stays inside the
/// 30 s decision interval with room for `retry::with_backoff`.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for the cluster the coordinator runs in, or the one a kubeconfig names.
///
/// `kubeconfig`: `None` infers as `kubectl` does (`KUBECONFIG` or `~/.kube/config` if present,
/// else the pod's ServiceAccount, in-cluster); `Some(path)` uses that file's current context.
/// Returns the client and the default namespace (in a pod: its own namespace; with a
/// kubeconfig: its context's), which is where the Lease lives unless told otherwise.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<(kube::Client, String), KubeError> {
    let config = match kubeconfig {
        None => kube::Config::infer().await.map_err(KubeError::Infer)?,
        Some(path) => {
            let kubeconfig_err = |source| KubeError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(kubeconfig_err)?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig_err)?
        }
    };
    let namespace = config.default_namespace.clone();
    Ok((client_from_config(config)?, namespace))
}

/// A client from an explicit configuration (tests point one at a fake API server with
/// `kube::Config::new("http://127.0.0.1:PORT".parse()?)`).
///
/// kube's own retry layer (429/503/504) is turned off: `retry::with_backoff` is the one place
/// that retries actuator calls, so every attempt is logged and counted, and attempts do not
/// multiply (kube's 3 × ours 4).
pub fn client_from_config(mut config: kube::Config) -> Result<kube::Client, KubeError> {
    config.default_retry = false;
    config.read_timeout = Some(READ_TIMEOUT);
    kube::Client::try_from(config).map_err(|e| KubeError::Client(Box::new(e)))
}
