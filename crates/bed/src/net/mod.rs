//! Kubernetes networking on the bed, on loopback only: the kube-proxy stand-in
//! ([`kube_proxy`], its rules in [`proxy_rules`]) that carries NodePort traffic from a node's
//! loopback address to the pods behind a Service.

pub mod kube_proxy;
pub mod proxy_rules;
