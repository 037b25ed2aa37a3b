//! Writes the seed corpora under `fuzz/corpus/<target>` (run by `scripts/fuzz --seed`): small,
//! valid inputs of each kind, from which the fuzzers mutate. The fuzzers add what they find;
//! `scripts/fuzz` keeps the minimised corpus that is committed.

use std::path::Path;

use prost::Message as _;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut written = 0;
    for (target, seeds) in seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory can be made");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).expect("a seed can be written");
            written += 1;
        }
    }
    println!("{written} seeds under {}", root.display());
}

fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let result = r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eni0a1b2c3d4e5","mac":"6a:1f:00:00:00:01"},{"name":"eth0","mac":"6a:1f:00:00:00:02","sandbox":"/var/run/netns/cni-1","mtu":9001}],"ips":[{"address":"10.0.1.23/32","interface":1}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#;
    let branch = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"vlan0a1b2c3d4e5","mac":"6a:1f:00:00:00:03"},{"name":"eth0","mac":"6a:1f:00:00:00:04","sandbox":"/var/run/netns/cni-2"},{"name":"dummy0a1b2c3d4e5","mac":"7","sandbox":"0"}],"ips":[{"address":"10.0.96.23/19","gateway":"10.0.96.1","interface":1}]}"#;
    let conf = |extra: &str| {
        format!(
            r#"{{"cniVersion":"1.1.0","name":"aws-cni","type":"eniplan-cni","vethPrefix":"eni","mtu":"9001","podSGEnforcingMode":"strict","pluginLogFile":"/var/log/aws-routed-eni/plugin.log","pluginLogLevel":"DEBUG"{extra}}}"#
        )
        .into_bytes()
    };
    let checkpoint = |allocations: &str| {
        format!(r#"{{"version":"vpc-cni-ipam/1","allocations":[{allocations}]}}"#).into_bytes()
    };
    let entry = |c: &str, ip: &str| {
        format!(
            r#"{{"networkName":"aws-cni","containerID":"{c}","ifName":"eth0","ipv4":"{ip}","allocationTimestamp":1733500000000000000,"metadata":{{"k8sPodNamespace":"default","k8sPodName":"web-{c}","interfacesCount":1}}}}"#
        )
    };
    let add = eniplan_rpc::AddNetworkRequest {
        k8s_pod_name: "web-1".to_owned(),
        k8s_pod_namespace: "default".to_owned(),
        k8s_pod_infra_container_id: "c0ffee".to_owned(),
        netns: "/var/run/netns/cni-1".to_owned(),
        if_name: "eth0".to_owned(),
        network_name: "aws-cni".to_owned(),
        container_id: "c0ffee".to_owned(),
        client_version: "0.1.0".to_owned(),
        requires_multi_nic_attachment: false,
        k8s_pod_uid: "0b1c".to_owned(),
    };
    let del = eniplan_rpc::DelNetworkRequest {
        k8s_pod_name: "web-1".to_owned(),
        k8s_pod_namespace: "default".to_owned(),
        reason: "PodDeleted".to_owned(),
        if_name: "eth0".to_owned(),
        network_name: "aws-cni".to_owned(),
        container_id: "c0ffee".to_owned(),
        client_version: "0.1.0".to_owned(),
        k8s_pod_uid: "0b1c".to_owned(),
        ..Default::default()
    };
    let tagged = |tag: u8, body: Vec<u8>| [vec![tag], body].concat();
    let annotation = r#"[{"eniId":"eni-0a1b2c3d4e5f60001","ifAddress":"0e:5f:12:34:56:78","privateIp":"10.0.96.23","vlanId":7,"subnetCidr":"10.0.96.0/19","associationID":"trunk-assoc-0c1d2e3f"}]"#;
    let eniconfig = |spec: &str| {
        format!(r#"{{"apiVersion":"crd.k8s.amazonaws.com/v1alpha1","kind":"ENIConfig","metadata":{{"name":"us-west-2a","resourceVersion":"7"}},"spec":{spec}}}"#).into_bytes()
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let specs: Vec<Vec<u8>> = ["three-az-default", "custom-networking", "pd-fragmented"]
        .iter()
        .map(|n| std::fs::read(examples.join(format!("{n}.yaml"))).expect("an example spec"))
        .collect();
    let churn =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/data/churn.trace"))
            .expect("the example trace");
    vec![
        ("cni_config", vec![conf(""), conf(&format!(r#","prevResult":{result}"#)), conf(r#","cni.dev/valid-attachments":[{"containerID":"c0ffee","ifname":"eth0"}]"#), conf(r#","runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"vpc.amazonaws.com/pod-eni":"[]"}}"#)]),
        ("cni_prev_result", vec![result.into(), branch.into()]),
        ("cni_gc_attachments", vec![br#"[{"containerID":"c0ffee","ifname":"eth0"},{"containerID":"d00d","ifname":"eth1"}]"#.to_vec(), b"null".to_vec(), b"[]".to_vec()]),
        ("checkpoint", vec![
            checkpoint(&[entry("a1", "10.0.0.5"), entry("b2", "10.0.1.9")].join(",")),
            checkpoint(&[entry("a1", "10.0.0.17"), entry("b2", "10.0.1.33")].join(",")),
            checkpoint(&[entry("a1", "10.0.0.5"), entry("a1", "10.0.0.6"), entry("c3", "10.0.0.5")].join(",")),
            checkpoint(""),
        ]),
        ("rpc_messages", vec![tagged(0, add.encode_to_vec()), tagged(1, del.encode_to_vec())]),
        ("socket_authority", vec![tagged(7, h2_request(b"tmp%2Fipamd.sock")), tagged(64, h2_request(b"localhost"))]),
        ("daemon_env", vec![
            b"WARM_IP_TARGET=5\nMINIMUM_IP_TARGET=10\nAWS_VPC_K8S_CNI_EXTERNALSNAT=false\nENIPLAN_MAX_PODS=29".to_vec(),
            b"ENABLE_PREFIX_DELEGATION=true\nWARM_PREFIX_TARGET=1\nMY_NODE_NAME=ip-10-0-0-4\nAWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true".to_vec(),
            b"0=1\n7=true\n12=10\n25=:61679".to_vec(),
        ]),
        ("pod_eni_annotation", vec![annotation.into(), annotation.replace("vlanId", "vlanID").into_bytes(), b"[]".to_vec()]),
        ("eniconfig", vec![eniconfig(r#"{"subnet":"subnet-0a1b2c3d4e5f60708","securityGroups":["sg-0a1b2c3d"]}"#), eniconfig(r#"{"subnet":"subnet-0a1b2c3d"}"#)]),
        ("imds_answers", vec![imds(false), imds(true)]),
        ("ec2_replies", ec2()),
        ("cluster_spec", specs),
        ("trace", vec![churn, b"0 add web-1\n30s add web-2 # second\n1.5m del web-1\n2h del web-2\n".to_vec()]),
    ]
}

/// The preface, SETTINGS and one request as gRPC C-core sends it, with `authority`.
fn h2_request(authority: &[u8]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.push(u8::try_from(s.len()).expect("a short string"));
        out.extend_from_slice(s);
    }
    let mut block = vec![0x83, 0x86, 0x41]; // POST, http, :authority with indexing
    string(&mut block, authority);
    for (name, value) in [
        (&b":path"[..], &b"/rpc.CNIBackend/AddNetwork"[..]),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ] {
        block.push(0);
        string(&mut block, name);
        string(&mut block, value);
    }
    let mut out = Vec::new(); // the target adds the preface itself
    frame(&mut out, 0x4, 0, 0, &[]);
    frame(&mut out, 0x1, 0x4, 1, &block);
    frame(&mut out, 0x0, 0x1, 1, &[0, 0, 0, 0, 0]);
    frame(&mut out, 0x1, 0x5, 3, &[0x83, 0x86, 0xbe]); // a second request, authority by index
    out
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .expect("a small frame")
        .to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// IMDS answers in the order the identity and interface walks ask (see `imds_answers`).
fn imds(region: bool) -> Vec<u8> {
    let mut fields: Vec<&str> = vec!["us-west-2a"];
    fields.push(if region { "us-west-2" } else { "\u{1}" });
    fields.extend([
        "i-0123456789abcdef0",
        "m5.large",
        "10.0.0.4",
        "0e:5f:12:34:56:01",
    ]);
    fields.push("0e:5f:12:34:56:01/\n0e:5f:12:34:56:02/\n");
    for (device, ips) in [
        ("0", "10.0.0.4\n10.0.0.5\n10.0.0.6"),
        ("1", "10.0.1.4\n10.0.1.9"),
    ] {
        fields.extend([
            device,
            "0",
            "eni-0a1b2c3d4e5f60708",
            "subnet-0a1b2c3d",
            "10.0.0.0/16",
            "10.0.0.0/16\n100.64.0.0/16",
            "sg-0a1b2c3d\nsg-0b1c2d3e",
            ips,
            "10.0.2.16/28",
        ]);
    }
    fields.join("\0").into_bytes()
}

/// EC2 replies: a call byte, a status byte (even 200, odd 400), the XML.
fn ec2() -> Vec<Vec<u8>> {
    let ns = r#"xmlns="http://ec2.amazonaws.com/doc/2016-11-15/""#;
    let eni = r"<item><networkInterfaceId>eni-0a1b2c3d4e5f60708</networkInterfaceId><subnetId>subnet-0a1b2c3d</subnetId><vpcId>vpc-0a1b2c3d</vpcId><availabilityZone>us-west-2a</availabilityZone><description>aws-K8S-i-0123456789abcdef0</description><ownerId>000000000000</ownerId><requesterManaged>false</requesterManaged><status>in-use</status><macAddress>0e:5f:12:34:56:02</macAddress><privateIpAddress>10.0.1.4</privateIpAddress><sourceDestCheck>true</sourceDestCheck><interfaceType>interface</interfaceType><groupSet><item><groupId>sg-0a1b2c3d</groupId><groupName>nodes</groupName></item></groupSet><attachment><attachmentId>eni-attach-0a1b2c3d</attachmentId><instanceId>i-0123456789abcdef0</instanceId><deviceIndex>1</deviceIndex><networkCardIndex>0</networkCardIndex><status>attached</status><deleteOnTermination>true</deleteOnTermination></attachment><privateIpAddressesSet><item><privateIpAddress>10.0.1.4</privateIpAddress><primary>true</primary></item><item><privateIpAddress>10.0.1.9</privateIpAddress><primary>false</primary></item></privateIpAddressesSet><ipv4PrefixSet><item><ipv4Prefix>10.0.2.16/28</ipv4Prefix></item></ipv4PrefixSet><tagSet><item><key>node.k8s.amazonaws.com/instance_id</key><value>i-0123456789abcdef0</value></item></tagSet></item>";
    let reply = |call: u8, status: u8, xml: String| [vec![call, status], xml.into_bytes()].concat();
    vec![
        reply(3, 0, format!(r"<DescribeNetworkInterfacesResponse {ns}><requestId>r-1</requestId><networkInterfaceSet>{eni}</networkInterfaceSet></DescribeNetworkInterfacesResponse>")),
        reply(4, 0, format!(r"<CreateNetworkInterfaceResponse {ns}><requestId>r-2</requestId><networkInterface>{}</networkInterface></CreateNetworkInterfaceResponse>", eni.trim_start_matches("<item>").trim_end_matches("</item>"))),
        reply(1, 0, format!(r"<DescribeInstanceTypesResponse {ns}><requestId>r-3</requestId><instanceTypeSet><item><instanceType>m5.large</instanceType><hypervisor>nitro</hypervisor><networkInfo><maximumNetworkInterfaces>3</maximumNetworkInterfaces><ipv4AddressesPerInterface>10</ipv4AddressesPerInterface><defaultNetworkCardIndex>0</defaultNetworkCardIndex><networkCards><item><networkCardIndex>0</networkCardIndex><maximumNetworkInterfaces>3</maximumNetworkInterfaces></item></networkCards></networkInfo><vCpuInfo><defaultVCpus>2</defaultVCpus></vCpuInfo><bareMetal>false</bareMetal></item></instanceTypeSet></DescribeInstanceTypesResponse>")),
        reply(6, 0, format!(r"<AssignPrivateIpAddressesResponse {ns}><requestId>r-4</requestId><networkInterfaceId>eni-0a1b2c3d4e5f60708</networkInterfaceId><assignedPrivateIpAddressesSet><item><privateIpAddress>10.0.1.10</privateIpAddress></item><item><privateIpAddress>10.0.1.11</privateIpAddress></item></assignedPrivateIpAddressesSet><return>true</return></AssignPrivateIpAddressesResponse>")),
        reply(7, 0, format!(r"<AssignPrivateIpAddressesResponse {ns}><requestId>r-5</requestId><networkInterfaceId>eni-0a1b2c3d4e5f60708</networkInterfaceId><assignedIpv4PrefixSet><item><ipv4Prefix>10.0.2.32/28</ipv4Prefix></item></assignedIpv4PrefixSet><return>true</return></AssignPrivateIpAddressesResponse>")),
        reply(5, 0, format!(r"<AttachNetworkInterfaceResponse {ns}><requestId>r-6</requestId><attachmentId>eni-attach-0a1b2c3d</attachmentId><networkCardIndex>0</networkCardIndex></AttachNetworkInterfaceResponse>")),
        reply(2, 0, format!(r"<DescribeSubnetsResponse {ns}><requestId>r-7</requestId><subnetSet><item><subnetId>subnet-0a1b2c3d</subnetId><vpcId>vpc-0a1b2c3d</vpcId><cidrBlock>10.0.0.0/16</cidrBlock><availableIpAddressCount>65000</availableIpAddressCount><availabilityZone>us-west-2a</availabilityZone></item></subnetSet></DescribeSubnetsResponse>")),
        reply(0, 0, format!(r"<DescribeInstancesResponse {ns}><requestId>r-8</requestId><reservationSet><item><reservationId>r-0a1b</reservationId><instancesSet><item><instanceId>i-0123456789abcdef0</instanceId><instanceType>m5.large</instanceType><subnetId>subnet-0a1b2c3d</subnetId><vpcId>vpc-0a1b2c3d</vpcId><networkInterfaceSet>{eni}</networkInterfaceSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>")),
        reply(6, 1, "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-9</RequestID></Response>".to_owned()),
        reply(4, 1, "<Response><Errors><Error><Code>InsufficientFreeAddressesInSubnet</Code><Message>The specified subnet does not have enough free addresses.</Message></Error></Errors><RequestID>r-10</RequestID></Response>".to_owned()),
        reply(5, 1, "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>r-11</RequestID></Response>".to_owned()),
    ]
}
