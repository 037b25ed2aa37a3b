# Pod subnets for custom networking: one per availability zone, created here from CIDRs or
# given as ids, each associated with its zone's route table.

resource "aws_vpc_ipv4_cidr_block_association" "pods" {
  count      = var.secondary_cidr == null ? 0 : 1
  vpc_id     = var.vpc_id
  cidr_block = var.secondary_cidr
}

resource "aws_subnet" "pods" {
  for_each = var.pod_subnets

  # Through the association, so that a new CIDR is in the VPC before its subnets.
  vpc_id                  = var.secondary_cidr == null ? var.vpc_id : aws_vpc_ipv4_cidr_block_association.pods[0].vpc_id
  cidr_block              = each.value
  availability_zone       = each.key
  map_public_ip_on_launch = false

  # The keys `eniplan layout --format terraform` writes (capacity/src/layout.rs); no eniplan
  # code selects subnets by tag: ipamd takes the subnet from the ENIConfig.
  tags = merge(var.tags, {
    Name              = "${var.cluster_name}-pods-${each.key}"
    "eniplan/purpose" = "pods"
    "eniplan/usable"  = tostring(pow(2, 32 - tonumber(split("/", each.value)[1])) - 5)
  })
}

locals {
  pod_subnet_ids = merge(var.pod_subnet_ids, { for az, s in aws_subnet.pods : az => s.id })
}

resource "aws_route_table_association" "pods" {
  for_each = { for az, id in local.pod_subnet_ids : az => id if contains(keys(var.route_table_ids), az) }

  subnet_id      = each.value
  route_table_id = var.route_table_ids[each.key]
}
