output "pod_subnet_ids" {
  description = "ENIConfig subnet id by AZ: put each in the spec.subnet of the ENIConfig named after the AZ."
  value       = { for az, s in aws_subnet.pods : az => s.id }
}
