//! Traffic on the bed, on loopback only: pods that answer ([`pods`]: the workload app on each
//! opted-in pod's loopback address, following the pod's life), and the kube-proxy stand-in
//! ([`kube_proxy`], its rules in [`proxy_rules`]) that carries NodePort traffic from a node's
//! loopback address to the pods behind a Service; and [`pod_network`], the pod addresses a bed
//! claims so that beds running side by side never serve at the same loopback address.

pub mod kube_proxy;
pub mod pod_network;
pub mod pods;
pub mod proxy_rules;
