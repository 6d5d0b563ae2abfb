//! The EC2 → node link through a real moto server: what happens to an instance in EC2 happens
//! to its Node in kubesim.

mod common;

use std::time::Duration;

use aws_sdk_ec2::types::{AttributeValue, InstanceType};
use common::*;

const T: Duration = Duration::from_secs(20);

fn the_spot_instance(bed: &costop_bed::Bed) -> String {
    bed.world().instance_ids("spot").remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_becomes_a_ready_node() {
    let bed = one_node_bed().await;
    let id = the_spot_instance(&bed);
    let node = wait_node_ready(&bed, &id, true, T).await;
    let seeded = &bed.world().node_groups["spot"].instances[0];
    assert_eq!(
        node["metadata"]["name"],
        seeded.private_dns_name.as_str(),
        "nodes are named by private DNS name"
    );
    assert_eq!(
        node["spec"]["providerID"],
        format!("aws:///us-east-1a/{id}").as_str()
    );
    assert_eq!(
        label(&node, "costop.io/pool"),
        Some("general"),
        "node-template label tag"
    );
    assert_eq!(
        label(&node, "node.kubernetes.io/instance-type"),
        Some("m5.large")
    );
    assert_eq!(
        label(&node, "topology.kubernetes.io/zone"),
        Some("us-east-1a")
    );
    assert!(
        has_taint(&node, "dedicated", "NoSchedule"),
        "node-template taint tag: {}",
        node["spec"]
    );
    assert_eq!(
        node.pointer("/status/capacity/cpu")
            .and_then(|v| v.as_str()),
        Some("2")
    );
    assert_eq!(
        node.pointer("/status/capacity/pods")
            .and_then(|v| v.as_str()),
        Some("29"),
        "EKS max pods of m5.large"
    );
    // The stopped standby has no node.
    let standby = bed.world().instance_ids("standby").remove(0);
    assert!(
        node_of(&bed, &standby).is_none(),
        "a stopped standby is not a node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_an_instance_makes_its_node_notready_with_the_shutdown_taint() {
    let bed = one_node_bed().await;
    let id = the_spot_instance(&bed);
    wait_node_ready(&bed, &id, true, T).await;
    bed.ec2()
        .stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let node = wait_for(
        T,
        "NotReady node with the shutdown taint",
        || match node_of(&bed, &id) {
            Some(n)
                if !costop_bed::node_ready(&n)
                    && has_taint(
                        &n,
                        "node.cloudprovider.kubernetes.io/shutdown",
                        "NoSchedule",
                    ) =>
            {
                Ok(n)
            }
            Some(n) => Err(format!("{}", n["spec"])),
            None => Err("no node".into()),
        },
    )
    .await;
    assert_eq!(
        label(&node, "costop.io/pool"),
        Some("general"),
        "the node keeps its labels while stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_it_again_brings_the_node_back_with_its_labels_and_taints() {
    let bed = one_node_bed().await;
    let id = the_spot_instance(&bed);
    let before = wait_node_ready(&bed, &id, true, T).await;
    bed.ec2()
        .stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    wait_node_ready(&bed, &id, false, T).await;
    bed.ec2()
        .start_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let node = wait_for(
        T,
        "Ready node without the shutdown taint",
        || match node_of(&bed, &id) {
            Some(n)
                if costop_bed::node_ready(&n)
                    && !has_taint(
                        &n,
                        "node.cloudprovider.kubernetes.io/shutdown",
                        "NoSchedule",
                    ) =>
            {
                Ok(n)
            }
            Some(n) => Err(format!("{} {}", n["spec"], n["status"]["conditions"])),
            None => Err("no node".into()),
        },
    )
    .await;
    assert_eq!(node["metadata"]["name"], before["metadata"]["name"]);
    assert_eq!(label(&node, "costop.io/pool"), Some("general"));
    assert!(
        has_taint(&node, "dedicated", "NoSchedule"),
        "{}",
        node["spec"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_with_another_instance_type_updates_the_node_capacity() {
    let bed = one_node_bed().await;
    let id = the_spot_instance(&bed);
    wait_node_ready(&bed, &id, true, T).await;
    let ec2 = bed.ec2();
    ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    wait_node_ready(&bed, &id, false, T).await;
    ec2.modify_instance_attribute()
        .instance_id(&id)
        .instance_type(
            AttributeValue::builder()
                .value(InstanceType::M5Xlarge.as_str())
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.start_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let node = wait_for(T, "Ready m5.xlarge node", || match node_of(&bed, &id) {
        Some(n)
            if costop_bed::node_ready(&n)
                && label(&n, "node.kubernetes.io/instance-type") == Some("m5.xlarge") =>
        {
            Ok(n)
        }
        Some(n) => Err(format!(
            "{} {}",
            n["metadata"]["labels"], n["status"]["capacity"]
        )),
        None => Err("no node".into()),
    })
    .await;
    assert_eq!(
        node.pointer("/status/capacity/cpu")
            .and_then(|v| v.as_str()),
        Some("4")
    );
    assert_eq!(
        node.pointer("/status/capacity/pods")
            .and_then(|v| v.as_str()),
        Some("58"),
        "EKS max pods of m5.xlarge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_an_instance_deletes_its_node() {
    let bed = one_node_bed().await;
    let id = the_spot_instance(&bed);
    wait_node_ready(&bed, &id, true, T).await;
    bed.ec2()
        .terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    wait_for(T, "the node to be deleted", || match node_of(&bed, &id) {
        None => Ok(()),
        Some(n) => Err(format!("still there: {}", n["metadata"]["name"])),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_standby_registers_a_node_with_the_standby_taint() {
    let bed = one_node_bed().await;
    let id = bed.world().instance_ids("standby").remove(0);
    bed.ec2()
        .start_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let node = wait_node_ready(&bed, &id, true, T).await;
    assert!(
        has_taint(&node, "costop.io/standby", "NoSchedule"),
        "{}",
        node["spec"]
    );
    assert_eq!(label(&node, "costop.io/standby"), Some("true"));
}
