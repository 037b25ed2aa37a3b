# Pod subnets for VPC CNI custom networking: one subnet per AZ from a (secondary) VPC CIDR.
# The CIDRs come from `eniplan layout SPEC --cidr 100.64.0.0/16 --format json` (subnets[].cidr by
# subnets[].az); `--format terraform` emits the same resources standalone. Example only: this
# repository has no Terraform in CI; the planner tests parse these files as HCL.

resource "aws_vpc_ipv4_cidr_block_association" "pods" {
  count      = var.associate_cidr ? 1 : 0
  vpc_id     = var.vpc_id
  cidr_block = var.cidr
}

resource "aws_subnet" "pods" {
  for_each = var.pod_subnets

  vpc_id            = var.associate_cidr ? aws_vpc_ipv4_cidr_block_association.pods[0].vpc_id : var.vpc_id
  cidr_block        = each.value
  availability_zone = each.key

  tags = merge(var.tags, {
    Name              = "${var.cluster_name}-pods-${each.key}"
    "eniplan/purpose" = "pods"
  })
}
