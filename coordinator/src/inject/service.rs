//! Services of the input that select an injected workload's pods: a port that targets the
//! model server is pointed at the sidecar's named port instead, so that requests go through
//! the sidecar's admission queue. Other ports and other Services are left alone.

use serde_norway::Value;

use super::pod::malformed;
use super::{DocRef, InjectError, PROXY_PORT_NAME, PodTarget, s};

pub(super) fn retarget(
    doc: &DocRef,
    svc: &mut Value,
    targets: &[PodTarget],
) -> Result<(), InjectError> {
    let namespace = svc
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(spec) = svc.get_mut("spec") else {
        return Ok(());
    };
    let selector: Vec<(String, String)> = spec
        .get("selector")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect();
    // A Service without a selector (endpoints managed by hand, ExternalName) selects nothing.
    if selector.is_empty() {
        return Ok(());
    }
    let Some(target) = targets
        .iter()
        .find(|t| t.namespace == namespace && selector.iter().all(|pair| t.labels.contains(pair)))
    else {
        return Ok(());
    };
    let Some(ports) = spec.get_mut("ports") else {
        return Ok(());
    };
    let ports = ports
        .as_sequence_mut()
        .ok_or_else(|| malformed(doc, "spec.ports".to_owned(), "a list"))?;
    for p in ports {
        let Some(p) = p.as_mapping_mut() else {
            return Err(malformed(doc, "spec.ports[]".to_owned(), "a mapping"));
        };
        // An absent targetPort means the same number as `port`.
        let aimed = p.get("targetPort").or_else(|| p.get("port")).cloned();
        let at_server = match &aimed {
            Some(Value::Number(n)) => n.as_u64() == Some(u64::from(target.upstream_port)),
            Some(Value::String(name)) => target.upstream_port_name.as_deref() == Some(name),
            _ => false,
        };
        if at_server {
            p.insert(s("targetPort"), s(PROXY_PORT_NAME));
        }
    }
    Ok(())
}
