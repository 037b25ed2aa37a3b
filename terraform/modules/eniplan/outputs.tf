output "pod_subnet_ids" {
  description = "Pod subnet id by availability zone (created and given): each ENIConfig's spec.subnet."
  value       = local.pod_subnet_ids
}

output "eniconfig_names" {
  description = "The ENIConfigs created, one per availability zone (the zone's name)."
  value       = sort(keys(kubernetes_manifest.eniconfig))
}

output "ipamd_settings" {
  description = "The environment ipamd needs for these ENIConfigs (the DaemonSet in deploy/)."
  value = {
    AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG = "true"
    ENI_CONFIG_LABEL_DEF               = "topology.kubernetes.io/zone"
  }
}

output "iam_policy_arn" {
  description = "The policy of docs/iam-policy.json; with identity = none, attach it to the node role."
  value       = aws_iam_policy.ipamd.arn
}

output "iam_role_arn" {
  description = "ipamd's role (null with identity = none)."
  value       = one(aws_iam_role.ipamd[*].arn)
}

output "service_account_annotations" {
  description = "With identity = irsa, the annotation ipamd's service account needs ({} otherwise)."
  value       = { for k, v in { "eks.amazonaws.com/role-arn" = one(aws_iam_role.ipamd[*].arn) } : k => v if var.identity == "irsa" }
}
