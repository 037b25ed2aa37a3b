variable "cluster_name" {
  type        = string
  description = "The EKS cluster: the Pod Identity association, the role's trust and the resource names use it."

  validation {
    condition     = length(var.cluster_name) <= 50
    error_message = "cluster_name: at most 50 characters, as the IAM role is named CLUSTER-eniplan-ipamd (64 at most)."
  }
}

variable "vpc_id" {
  type        = string
  description = "The cluster's VPC."
}

variable "secondary_cidr" {
  type        = string
  default     = null
  description = "A CIDR to associate with the VPC before the pod subnets are created in it (null: the CIDRs of pod_subnets are already in the VPC)."

  validation {
    condition     = var.secondary_cidr == null || can(cidrhost(var.secondary_cidr, 0))
    error_message = "secondary_cidr must be an IPv4 CIDR such as 100.64.0.0/16."
  }
}

variable "pod_subnets" {
  type        = map(string)
  default     = {}
  description = "Pod subnets to create, CIDR by availability zone: the subnets[].az and subnets[].cidr of `eniplan layout SPEC --cidr CIDR --format json`."

  validation {
    condition     = alltrue([for cidr in values(var.pod_subnets) : can(cidrhost(cidr, 0))])
    error_message = "Every value of pod_subnets must be an IPv4 CIDR."
  }
}

variable "pod_subnet_ids" {
  type        = map(string)
  default     = {}
  description = "Pod subnets that already exist, id by availability zone (e.g. the pod_subnet_ids output of the Terraform `eniplan layout --format terraform` emits)."

  validation {
    condition     = length(setintersection(keys(var.pod_subnets), keys(var.pod_subnet_ids))) == 0
    error_message = "An availability zone is in both pod_subnets and pod_subnet_ids; give each zone one pod subnet."
  }
  validation {
    condition     = length(var.pod_subnets) + length(var.pod_subnet_ids) > 0
    error_message = "Give the pod subnets: pod_subnets (to create) or pod_subnet_ids (existing)."
  }
}

variable "route_table_ids" {
  type        = map(string)
  default     = {}
  description = "Route table by availability zone, normally the node subnets' (their NAT and endpoints), associated with the pod subnet of that zone. Empty: the pod subnets use the VPC's main route table."

  validation {
    condition = length(var.route_table_ids) == 0 || alltrue([
      for az in concat(keys(var.pod_subnets), keys(var.pod_subnet_ids)) : contains(keys(var.route_table_ids), az)
    ])
    error_message = "route_table_ids must name a route table for every availability zone that has a pod subnet (or be empty)."
  }
}

variable "pod_security_group_ids" {
  type        = list(string)
  default     = []
  description = "ENIConfig spec.securityGroups: the security groups of the pod ENIs (empty: each node's primary ENI's, as ipamd does)."

  validation {
    condition     = length(var.pod_security_group_ids) <= 16 && alltrue([for sg in var.pod_security_group_ids : can(regex("^sg-([0-9a-f]{8}|[0-9a-f]{17})$", sg))])
    error_message = "pod_security_group_ids: at most 16 ids of the form sg-0123456789abcdef0 (what ipamd accepts in an ENIConfig)."
  }
}

variable "create_eniconfigs" {
  type        = bool
  default     = true
  description = "Create one ENIConfig per availability zone, named after it (needs the ENIConfig CRD and a reachable cluster at plan time)."
}

variable "identity" {
  type        = string
  default     = "pod_identity"
  description = "How ipamd gets its AWS credentials: pod_identity (an EKS Pod Identity association), irsa (an OIDC trust for the service account) or none (only the policy, to attach to the node role yourself)."

  validation {
    condition     = contains(["pod_identity", "irsa", "none"], var.identity)
    error_message = "identity must be pod_identity, irsa or none."
  }
}

variable "oidc_provider_arn" {
  type        = string
  default     = null
  description = "The cluster's IAM OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID); needed with identity = irsa."

  validation {
    condition     = var.identity != "irsa" || can(regex(":oidc-provider/.+", var.oidc_provider_arn))
    error_message = "identity = irsa needs oidc_provider_arn, the ARN of the cluster's IAM OIDC provider."
  }
}

variable "service_account" {
  type = object({
    namespace = string
    name      = string
  })
  default = {
    namespace = "kube-system"
    name      = "eniplan"
  }
  description = "ipamd's service account; the default is the one deploy/ installs."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags for every AWS resource the module creates."
}
