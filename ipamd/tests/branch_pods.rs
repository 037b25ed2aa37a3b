//! Security groups for pods on a node: the real `ipamd` binary runs in the node world's
//! namespace (the instance's ENIs as links with their MACs, IMDS and EC2 on its loopback, the
//! fake Kubernetes API forwarded there too), and the resource-controller double does what the
//! EKS control plane does: a trunk ENI when the node asks for one, a branch ENI and the pod's
//! `vpc.amazonaws.com/pod-eni` annotation for each pod that requests one.

use std::net::Ipv4Addr;
use std::time::Duration;

use cloud::Ec2;
use cloud::model::EniFilter;
use harness_client::resource_controller::{NodeSpec, Options, ResourceController};
use ipamd::client::{add_request, connect, del_request};
use ipamd::rpc::AddNetworkReply;
use serde_json::Value;

mod common;

use common::cluster::{CNINODE_CRD, Cluster, cluster_env, env_refs, pod_yaml, until};
use common::node;

/// A pod whose first container requests a branch ENI, as the controller's webhook leaves it.
fn branch_pod_yaml(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: pause\n    resources:\n      limits:\n        vpc.amazonaws.com/pod-eni: \"1\"\n      requests:\n        vpc.amazonaws.com/pod-eni: \"1\"\n  - name: sidecar\n    image: pause\n"
    )
}

async fn add_reply(
    n: &common::Node,
    id: &str,
    pod: &str,
) -> Result<AddNetworkReply, tonic::Status> {
    let mut client = connect(&n.socket()).await.unwrap();
    client
        .add_network(add_request(id, "default", pod))
        .await
        .map(tonic::Response::into_inner)
}

/// The index of the link with `mac` in `netns`.
fn link_index(netns: &str, mac: &str) -> i64 {
    let out = std::process::Command::new("ip")
        .args(["-n", netns, "-j", "link", "show"])
        .output()
        .unwrap();
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"] == mac)
        .and_then(|l| l["ifindex"].as_i64())
        .unwrap_or_else(|| panic!("no link with MAC {mac} in {netns}: {links}"))
}

/// The pool's addresses, from `/v1/pool`.
fn pool_ips(view: &Value) -> Vec<String> {
    view["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn branch_pods_are_answered_from_their_annotation_on_the_trunk_the_controller_attached() {
    let n = node("sgp-branch", "m5.large", "10.0.224.0/20").await;
    let c = Cluster::start(&n.dir).await;
    c.kubectl(&["apply", "-f", "-"], Some(CNINODE_CRD)).await;
    let name = "ip-10-0-224-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    let world = harness_client::node_with_ports("sgpb", &n.instance, 0, &[c.fake.addr().port()]);
    let spec = NodeSpec {
        name: name.to_owned(),
        instance_id: n.instance.clone(),
        subnet_id: n.subnet.clone(),
        security_groups: Vec::new(),
    };
    let rc = ResourceController::start_with(
        n.ec2.clone(),
        &c.kubeconfig,
        spec,
        Options {
            annotating: false,
            ..Options::default()
        },
    )
    .await;
    let mut env = cluster_env(&c, name);
    env.push(("ENABLE_POD_ENI", "true".into()));
    let env = env_refs(&env);
    let mut d = n.start_in(&world.netns, &env).await;

    // ipamd asks for a trunk, the controller attaches one at the highest device index, and
    // ipamd finds it: in the pool's view as a trunk, never carrying pool addresses.
    let trunk = rc
        .until("a trunk ENI", Duration::from_mins(1), |s| s.trunk.is_some())
        .await
        .trunk
        .unwrap();
    let is_trunk = |e: &Value| e["id"] == trunk.as_str() && e["trunk"] == true;
    let view = until(&n, "/v1/pool", "ipamd knows the trunk", |v| {
        v["snapshot"]["enis"]
            .as_array()
            .unwrap()
            .iter()
            .any(is_trunk)
    })
    .await;
    let enis = view["snapshot"]["enis"].as_array().unwrap();
    let on_trunk = enis.iter().find(|e| is_trunk(e)).unwrap();
    assert_eq!(
        (on_trunk["device"].as_u64(), on_trunk["addresses"].as_u64()),
        (Some(2), Some(0)),
        "{on_trunk}"
    );
    let described = n
        .ec2
        .describe_network_interfaces(&EniFilter {
            ids: vec![planner::pool::EniId(trunk.clone())],
            ..EniFilter::default()
        })
        .await
        .unwrap();
    let trunk_mac = described[0].mac.to_ascii_lowercase();

    // Older controllers read the legacy node label.
    let label = c
        .kubectl(
            &[
                "get",
                "node",
                name,
                "-o",
                r"jsonpath={.metadata.labels.vpc\.amazonaws\.com/has-trunk-attached}",
            ],
            None,
        )
        .await;
    assert_eq!(label, "false");

    // A pod without the resource keeps taking pool addresses, never on the trunk.
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("web", name)))
        .await;
    let web = add_reply(&n, "c-web", "web").await.expect("a pool address");
    assert_eq!(web.pod_vlan_id, 0);
    assert!(web.ip_allocation_metadata[0].device_number >= 0);

    // A branch pod before the controller has annotated it: try again, with the reason.
    c.kubectl(&["create", "-f", "-"], Some(&branch_pod_yaml("shop", name)))
        .await;
    let late = add_reply(&n, "c-shop", "shop").await.unwrap_err();
    assert_eq!(late.code(), tonic::Code::Unavailable, "{late:?}");
    assert!(
        late.message()
            .contains("no vpc.amazonaws.com/pod-eni annotation yet"),
        "{late:?}"
    );

    // Annotated: the branch address, its VLAN, MAC and subnet gateway, the trunk's link.
    rc.set_annotating(true);
    let key = ("default".to_owned(), "shop".to_owned());
    let annotated = rc
        .until("the pod annotated", Duration::from_mins(1), |s| {
            s.annotated.contains(&key)
        })
        .await;
    let b = annotated.branches[&key].clone();
    let reply = add_reply(&n, "c-shop", "shop")
        .await
        .expect("the branch ENI");
    let (base, _) = b.subnet_cidr.split_once('/').unwrap();
    let gateway = Ipv4Addr::from(u32::from(base.parse::<Ipv4Addr>().unwrap()) + 1);
    assert_eq!(
        (
            reply.pod_vlan_id,
            reply.pod_eni_mac.as_str(),
            reply.pod_eni_subnet_gw.clone(),
            i64::from(reply.parent_if_index),
        ),
        (
            i32::from(b.vlan),
            b.mac.as_str(),
            gateway.to_string(),
            link_index(&world.netns, &trunk_mac),
        )
    );
    let meta = &reply.ip_allocation_metadata[0];
    assert_eq!(
        (meta.ipv4_addr.as_str(), meta.device_number),
        (b.ip.as_str(), -1)
    );
    let view = n.at_rest().await;
    assert!(
        !pool_ips(&view).contains(&b.ip),
        "the branch address is not the pool's"
    );

    // ipamd restarts with the branch pod running: the same answer (the annotation is the
    // record), and DEL answers its VLAN.
    d.stop();
    d = n.start_in(&world.netns, &env).await;
    let again = add_reply(&n, "c-shop", "shop")
        .await
        .expect("the same branch");
    assert_eq!(again, reply);
    let mut client = connect(&n.socket()).await.unwrap();
    let del = client
        .del_network(del_request("c-shop", "default", "shop"))
        .await
        .expect("DEL of a branch pod")
        .into_inner();
    assert_eq!(
        (
            del.pod_vlan_id,
            del.ip_allocation_metadata[0].ipv4_addr.as_str()
        ),
        (i32::from(b.vlan), b.ip.as_str())
    );

    // Unusable annotations: a clear reason to retry with, and the pool untouched.
    let before = pool_ips(&n.at_rest().await);
    for (value, reason) in [
        ("not json", "not a JSON array"),
        ("[]", "no branch ENI in it yet"),
        (
            r#"[{"privateIp":"10.0.224.77","vlanId":3,"subnetCidr":"10.0.224.0/20"}]"#,
            "no ifAddress",
        ),
        (
            r#"[{"ifAddress":"0e:00:00:00:00:01","privateIp":"10.0.224.77","subnetCidr":"10.0.224.0/20"}]"#,
            "no vlanId",
        ),
    ] {
        let annotation = format!("vpc.amazonaws.com/pod-eni={value}");
        c.kubectl(
            &["annotate", "--overwrite", "pod", "shop", &annotation],
            None,
        )
        .await;
        let refused = add_reply(&n, "c-shop-2", "shop").await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::Unavailable,
            "{value}: {refused:?}"
        );
        assert!(refused.message().contains(reason), "{value}: {refused:?}");
    }
    assert_eq!(
        pool_ips(&n.at_rest().await),
        before,
        "nothing changed in the pool"
    );

    // The pod is deleted: the controller deletes its branch; a late DEL is an unknown pod.
    c.kubectl(&["delete", "pod", "shop"], None).await;
    rc.until("the branch deleted", Duration::from_mins(1), |s| {
        s.deleted.contains(&b.eni_id)
    })
    .await;
    let gone = client
        .del_network(del_request("c-shop", "default", "shop"))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
    d.stop();
    c.assert_within_rbac();
}
