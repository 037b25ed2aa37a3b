variable "vpc_id" {
  type        = string
  description = "The cluster's VPC."
}

variable "cluster_name" {
  type        = string
  description = "Used in the subnets' Name tags."
}

variable "cidr" {
  type        = string
  description = "The CIDR the layout carved, e.g. 100.64.0.0/16."
}

variable "associate_cidr" {
  type        = bool
  default     = true
  description = "Associate `cidr` with the VPC (false when it already is one of its CIDRs)."
}

variable "pod_subnets" {
  type        = map(string)
  description = "Pod subnet CIDR by AZ, from eniplan layout (e.g. { \"eu-west-1a\" = \"100.64.0.0/18\" })."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags for every subnet."
}
