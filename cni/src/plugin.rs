//! The commands: ADD wires a pod with the address ipamd gives it, DEL undoes it and returns the
//! address, STATUS says whether ipamd can be reached.

use std::net::Ipv4Addr;

use eniplan_rpc::{
    AddNetworkRequest, Attachment, CheckNetworkRequest, DelNetworkRequest, GarbageCollectRequest,
};
use serde_json::{Value, json};

use crate::ipamd::{Ipamd, VERSION};
use crate::log::Log;
use crate::spec::{
    CniResult, Code, Command, Env, Error, Interface, IpConfig, LogLevel, NetConf, Route,
};
use crate::vlan;
use crate::wire::{self, GATEWAY, MAIN_TABLE, Plan};

mod branch;

/// Runs the command; `Ok(Some(json))` is printed on stdout.
///
/// # Errors
/// The spec error to print.
pub async fn run(env: &Env, conf: &NetConf, log: &mut Log) -> Result<Option<Value>, Error> {
    match env.command {
        Command::Add => add(env, conf, log).await.map(Some),
        Command::Del => del(env, conf, log).await.map(|()| None),
        Command::Status => status(conf).await.map(|()| None),
        Command::Version => Ok(Some(crate::spec::version_reply(Some(conf.version)))),
        Command::Check => check(env, conf).await.map(|()| None),
        Command::Gc => gc(conf, log).await.map(|()| None),
    }
}

/// The pod's namespace and name from `CNI_ARGS` (the kubelet sets them).
fn pod_of(env: &Env) -> Result<(String, String), Error> {
    let get = |k: &str| {
        env.arg(k).map(str::to_owned).ok_or_else(|| {
            Error::new(
                Code::InvalidEnvironment,
                format!("CNI_ARGS: {k} is missing"),
            )
            .details("the kubelet passes K8S_POD_NAMESPACE and K8S_POD_NAME")
        })
    };
    Ok((get("K8S_POD_NAMESPACE")?, get("K8S_POD_NAME")?))
}

async fn add(env: &Env, conf: &NetConf, log: &mut Log) -> Result<Value, Error> {
    let (namespace, pod) = pod_of(env)?;
    let netns_path = env.netns.clone().unwrap_or_default();
    let pod_ns = wire::open_netns(&netns_path)?;
    let home = wire::current_netns()?;
    let mut ipamd = Ipamd::connect(&conf.ipamd_socket).await?;
    let reply = ipamd
        .add(AddNetworkRequest {
            k8s_pod_name: pod.clone(),
            k8s_pod_namespace: namespace.clone(),
            k8s_pod_infra_container_id: env.container_id.clone(),
            netns: netns_path.clone(),
            if_name: env.ifname.clone(),
            network_name: conf.name.clone(),
            container_id: env.container_id.clone(),
            client_version: VERSION.to_owned(),
            requires_multi_nic_attachment: false,
            k8s_pod_uid: env.arg("K8S_POD_UID").unwrap_or_default().to_owned(),
        })
        .await?;
    let allocation = reply
        .ip_allocation_metadata
        .first()
        .ok_or_else(|| Error::new(Code::IpamdRefused, "ipamd answered without an address"))?;
    let ip: Ipv4Addr = allocation.ipv4_addr.parse().map_err(|_| {
        Error::new(
            Code::IpamdRefused,
            format!(
                "ipamd answered with {:?}, not an IPv4 address",
                allocation.ipv4_addr
            ),
        )
    })?;
    let branch = branch::from_reply(&reply, conf.sg_mode)?;
    let (prefix, table) = match &branch {
        Some(b) => (
            vlan::veth_prefix(b.mode, &conf.veth_prefix),
            vlan::table(b.vlan),
        ),
        None => (
            conf.veth_prefix.as_str(),
            u32::try_from(allocation.route_table_id)
                .ok()
                .filter(|t| *t != 0)
                .unwrap_or(MAIN_TABLE),
        ),
    };
    let plan = Plan {
        host_veth: wire::host_veth_name(prefix, &namespace, &pod),
        pod_if: env.ifname.clone(),
        ip,
        table,
        mtu: conf.mtu,
    };
    log.line(
        LogLevel::Info,
        "ADD",
        json!({"container": env.container_id, "pod": format!("{namespace}/{pod}"), "ip": ip.to_string(),
               "table": table, "veth": plan.host_veth, "vlan": branch.as_ref().map(|b| b.vlan)}),
    );
    let host = wire::connect()?;
    let in_pod = wire::connect_in(&pod_ns, &home)?;
    // GC finds branch pods by their records (ipamd holds nothing for them): written before
    // anything is built, so a plugin killed halfway leaves nothing GC cannot find.
    if let Some(b) = &branch {
        branch::remember(conf, env, b.vlan, ip, (&namespace, &pod))?;
    }
    let built = match &branch {
        Some(b) => vlan::add(&host, &in_pod, &pod_ns, &plan, b).await,
        None => wire::add(&host, &in_pod, &pod_ns, &plan).await,
    };
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            // Roll back: what was built, then the address (as the VPC CNI: SetupNSFailed).
            undo(&host, &plan, branch.as_ref(), conf, env).await;
            let _ = ipamd
                .del(del_request(env, conf, &namespace, &pod, "SetupNSFailed"))
                .await;
            log.line(
                LogLevel::Error,
                "ADD failed",
                json!({"error": e.to_string()}),
            );
            return Err(e);
        }
    };
    let result = result(
        conf,
        &plan,
        built,
        netns_path,
        branch.as_ref(),
        (&namespace, &pod),
    );
    Ok(result.to_json(conf.version))
}

/// Removes what a failed ADD built (and a branch pod's record once that is done).
async fn undo(
    host: &rtnetlink::Handle,
    plan: &Plan,
    branch: Option<&vlan::Branch>,
    conf: &NetConf,
    env: &Env,
) {
    match branch {
        Some(b) => {
            if vlan::del(host, &plan.host_veth, Some(plan.ip), b.vlan)
                .await
                .is_ok()
            {
                branch::forget(conf, &env.container_id, &env.ifname);
            }
        }
        None => {
            let _ = wire::del(host, &plan.host_veth, Some(plan.ip)).await;
        }
    }
}

/// The ADD result: the host end, the pod end with its address; for a branch pod also the
/// branch's gateway and the `dummy` interface carrying its VLAN (the VPC CNI's layout).
fn result(
    conf: &NetConf,
    plan: &Plan,
    built: wire::Built,
    netns_path: String,
    branch: Option<&vlan::Branch>,
    (namespace, pod): (&str, &str),
) -> CniResult {
    let mut result = CniResult {
        interfaces: vec![
            Interface {
                name: plan.host_veth.clone(),
                mac: built.host_mac,
                sandbox: String::new(),
                mtu: Some(conf.mtu),
            },
            Interface {
                name: plan.pod_if.clone(),
                mac: built.pod_mac,
                sandbox: netns_path,
                mtu: Some(conf.mtu),
            },
        ],
        ips: vec![IpConfig {
            address: ipnetwork::Ipv4Network::new(plan.ip, 32).expect("a /32"),
            gateway: None,
            interface: Some(1),
        }],
        routes: vec![Route {
            dst: "0.0.0.0/0".parse().expect("a CIDR"),
            gw: Some(GATEWAY),
        }],
    };
    if let Some(b) = branch {
        // The branch's subnet gateway, and the VLAN for DEL and CHECK (the VPC CNI's layout).
        result.ips[0].gateway = Some(b.gateway);
        result
            .interfaces
            .push(branch::dummy(namespace, pod, b.vlan));
    }
    result
}

fn del_request(
    env: &Env,
    conf: &NetConf,
    namespace: &str,
    pod: &str,
    reason: &str,
) -> DelNetworkRequest {
    DelNetworkRequest {
        k8s_pod_name: pod.to_owned(),
        k8s_pod_namespace: namespace.to_owned(),
        k8s_pod_infra_container_id: env.container_id.clone(),
        reason: reason.to_owned(),
        if_name: env.ifname.clone(),
        network_name: conf.name.clone(),
        container_id: env.container_id.clone(),
        client_version: VERSION.to_owned(),
        k8s_pod_uid: env.arg("K8S_POD_UID").unwrap_or_default().to_owned(),
    }
}

/// DEL: the address goes back to ipamd (an unknown pod is already released), then the node
/// side is removed. It succeeds when repeated, without `prevResult` and after ipamd restarted.
/// An unreachable ipamd does not stop the clean-up, but DEL then fails with code 11 so the
/// runtime retries it: succeeding would leave the address booked to a pod that is gone.
async fn del(env: &Env, conf: &NetConf, log: &mut Log) -> Result<(), Error> {
    let (namespace, pod) = pod_of(env)?;
    let prev = conf
        .prev_result
        .as_ref()
        .and_then(|p| CniResult::from_prev(p).ok());
    let prev_ip = prev
        .as_ref()
        .and_then(|r| r.ips.first().map(|ip| ip.address.ip()));
    // A branch-ENI pod: ipamd holds nothing for it; its node side goes by the VLAN in
    // prevResult (as the VPC CNI's plugin, so pods it wired are torn down too).
    // (A VLAN that does not parse is left to ipamd's answer: DEL must not stop on it.)
    if let Some(vlan) = prev
        .as_ref()
        .and_then(|p| branch::prev_vlan(p).ok().flatten())
    {
        let names = branch::host_veths(conf, prev.as_ref(), &namespace, &pod);
        log.line(
            LogLevel::Info,
            "DEL",
            json!({"container": env.container_id, "pod": format!("{namespace}/{pod}"), "veth": names[0],
                   "vlan": vlan, "ip": prev_ip.map(|ip| ip.to_string())}),
        );
        branch::teardown(&wire::connect()?, &names, prev_ip, vlan).await?;
        branch::forget(conf, &env.container_id, &env.ifname);
        return Ok(());
    }
    // No prevResult (or one without the VLAN): ADD's record of a branch pod says the same.
    if let Some(r) = branch::recorded(conf, &env.container_id, &env.ifname) {
        log.line(
            LogLevel::Info,
            "DEL",
            json!({"container": env.container_id, "pod": format!("{namespace}/{pod}"),
                   "vlan": r.vlan, "ip": r.ip.to_string(), "from": "record"}),
        );
        branch::teardown(&wire::connect()?, &r.host_veths, Some(r.ip), r.vlan).await?;
        branch::forget(conf, &env.container_id, &env.ifname);
        return Ok(());
    }
    let asked = match Ipamd::connect(&conf.ipamd_socket).await {
        Ok(mut ipamd) => {
            ipamd
                .del(del_request(env, conf, &namespace, &pod, "PodDeleted"))
                .await
        }
        Err(e) => Err(e),
    };
    let (released, vlan, unreached) = match asked {
        Ok(reply) => (
            reply.as_ref().and_then(|r| {
                r.ip_allocation_metadata
                    .first()
                    .and_then(|a| a.ipv4_addr.parse::<Ipv4Addr>().ok())
            }),
            reply
                .as_ref()
                .and_then(|r| u16::try_from(r.pod_vlan_id).ok())
                .filter(|v| *v != 0),
            None,
        ),
        Err(e) if e.code == Code::IpamdRefused => return Err(e),
        Err(e) => {
            log.line(
                LogLevel::Warn,
                "DEL: ipamd not reached; cleaning the node side, then asking for a retry",
                json!({"error": e.to_string()}),
            );
            (None, None, Some(e))
        }
    };
    let host_veth = wire::host_veth_name(&conf.veth_prefix, &namespace, &pod);
    log.line(
        LogLevel::Info,
        "DEL",
        json!({"container": env.container_id, "pod": format!("{namespace}/{pod}"), "veth": host_veth,
               "released": released.map(|ip| ip.to_string())}),
    );
    let host = wire::connect()?;
    match vlan {
        // No prevResult, but ipamd says the pod (still in the API) has a branch ENI.
        Some(vlan) => {
            let names = branch::host_veths(conf, None, &namespace, &pod);
            branch::teardown(&host, &names, released.or(prev_ip), vlan).await?;
            branch::forget(conf, &env.container_id, &env.ifname);
        }
        None => wire::del(&host, &host_veth, released.or(prev_ip)).await?,
    }
    match unreached {
        None => Ok(()),
        Some(e) => Err(Error::new(
            Code::TryAgainLater,
            format!(
                "the pod's node side is removed, but its address is still booked: {}",
                e.msg
            ),
        )
        .details(e.details)),
    }
}

/// STATUS: code 50 only when ipamd cannot be reached (never because the pool is empty).
async fn status(conf: &NetConf) -> Result<(), Error> {
    match Ipamd::connect(&conf.ipamd_socket).await {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::new(Code::NotAvailable, e.msg).details(e.details)),
    }
}

/// CHECK: ipamd still holds the address `prevResult` names for this attachment, and everything
/// ADD built is on the node and in the pod.
async fn check(env: &Env, conf: &NetConf) -> Result<(), Error> {
    let (namespace, pod) = pod_of(env)?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::new(Code::InvalidConfig, "CHECK needs a prevResult"))
        .and_then(CniResult::from_prev)?;
    let ip = prev
        .ips
        .first()
        .map(|ip| ip.address.ip())
        .ok_or_else(|| Error::new(Code::InvalidConfig, "prevResult has no IPv4 address"))?;
    if let Some(vlan) = branch::prev_vlan(&prev)? {
        // A branch-ENI pod: ipamd holds nothing for it; the node and the pod are checked.
        let plan = Plan {
            host_veth: branch::host_veths(conf, Some(&prev), &namespace, &pod).remove(0),
            pod_if: env.ifname.clone(),
            ip,
            table: vlan::table(vlan),
            mtu: conf.mtu,
        };
        let pod_ns = wire::open_netns(env.netns.as_deref().unwrap_or_default())?;
        let home = wire::current_netns()?;
        let host = wire::connect()?;
        let in_pod = wire::connect_in(&pod_ns, &home)?;
        return vlan::check(&host, &in_pod, &plan, vlan, conf.sg_mode).await;
    }
    let mut ipamd = Ipamd::connect(&conf.ipamd_socket).await?;
    let held = ipamd
        .check(CheckNetworkRequest {
            network_name: conf.name.clone(),
            container_id: env.container_id.clone(),
            if_name: env.ifname.clone(),
            client_version: VERSION.to_owned(),
        })
        .await?;
    let allocation = held
        .ip_allocation_metadata
        .filter(|_| held.owned)
        .ok_or_else(|| {
            Error::new(
                Code::CheckFailed,
                format!("ipamd holds no address for container {}", env.container_id),
            )
        })?;
    if allocation.ipv4_addr != ip.to_string() {
        return Err(Error::new(
            Code::CheckFailed,
            format!(
                "ipamd holds {} for container {}, prevResult says {ip}",
                allocation.ipv4_addr, env.container_id
            ),
        ));
    }
    let plan = Plan {
        host_veth: wire::host_veth_name(&conf.veth_prefix, &namespace, &pod),
        pod_if: env.ifname.clone(),
        ip,
        table: u32::try_from(allocation.route_table_id)
            .ok()
            .filter(|t| *t != 0)
            .unwrap_or(MAIN_TABLE),
        mtu: conf.mtu,
    };
    let pod_ns = wire::open_netns(env.netns.as_deref().unwrap_or_default())?;
    let home = wire::current_netns()?;
    let host = wire::connect()?;
    let in_pod = wire::connect_in(&pod_ns, &home)?;
    wire::check(&host, &in_pod, &plan).await
}

/// GC: the branch-ENI pods the runtime no longer lists are removed (from ADD's records), then
/// ipamd releases every attachment of this network the runtime no longer lists, and their node
/// side is removed.
async fn gc(conf: &NetConf, log: &mut Log) -> Result<(), Error> {
    let valid = conf.valid_attachments.clone().unwrap_or_default();
    let host = wire::connect()?;
    let mut first_error = None;
    // Branch-ENI pods first: ipamd holds nothing for them, their records say what to remove.
    for r in branch::stale(conf, &valid) {
        log.line(
            LogLevel::Info,
            "GC branch pod",
            json!({"container": r.container_id, "ip": r.ip.to_string(), "vlan": r.vlan}),
        );
        match branch::teardown(&host, &r.host_veths, Some(r.ip), r.vlan).await {
            Ok(()) => branch::forget(conf, &r.container_id, &r.ifname),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut ipamd = Ipamd::connect(&conf.ipamd_socket).await?;
    let reply = ipamd
        .gc(GarbageCollectRequest {
            network_name: conf.name.clone(),
            valid: valid
                .iter()
                .map(|a| Attachment {
                    container_id: a.container_id.clone(),
                    if_name: a.ifname.clone(),
                })
                .collect(),
            client_version: VERSION.to_owned(),
        })
        .await?;
    for (attachment, allocation) in reply.released.iter().zip(&reply.ip_allocation_metadata) {
        log.line(
            LogLevel::Info,
            "GC released",
            json!({"container": attachment.container_id, "ip": allocation.ipv4_addr}),
        );
        if let Ok(ip) = allocation.ipv4_addr.parse::<Ipv4Addr>()
            && let Err(e) = wire::del_address(&host, ip).await
        {
            // Keep going past errors, as the spec asks; report the first.
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
