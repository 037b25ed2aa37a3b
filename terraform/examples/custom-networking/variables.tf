variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "The cluster's region (docs/examples/custom-networking.yaml plans eu-west-1a to 1c)."
}

variable "cluster_name" {
  type        = string
  default     = "platform"
  description = "The EKS cluster (the spec's cluster name)."
}

variable "node_subnet_ids" {
  type        = map(string)
  description = "The node subnet of each availability zone; the pod subnet of the zone gets its route table."
}
