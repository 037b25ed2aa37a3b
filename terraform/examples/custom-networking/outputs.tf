output "pod_subnet_ids" {
  description = "Pod subnet id by availability zone."
  value       = module.eniplan.pod_subnet_ids
}

output "ipamd_settings" {
  description = "Set these on ipamd (the DaemonSet in deploy/) to use the ENIConfigs."
  value       = module.eniplan.ipamd_settings
}

output "iam_role_arn" {
  description = "ipamd's role, handed to its service account by EKS Pod Identity."
  value       = module.eniplan.iam_role_arn
}
