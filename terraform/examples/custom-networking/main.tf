# Custom networking for the cluster of docs/examples/custom-networking.yaml. layout/ is the
# output of `eniplan layout ... --format terraform` (see terraform/README.md to regenerate it):
# it creates the pod subnets; the module routes them, writes the ENIConfigs and gives ipamd its
# role.

module "layout" {
  source = "./layout"
  vpc_id = data.aws_eks_cluster.this.vpc_config[0].vpc_id
}

data "aws_route_table" "nodes" {
  for_each  = var.node_subnet_ids
  subnet_id = each.value
}

module "eniplan" {
  source = "../../modules/eniplan"

  cluster_name    = var.cluster_name
  vpc_id          = data.aws_eks_cluster.this.vpc_config[0].vpc_id
  pod_subnet_ids  = module.layout.pod_subnet_ids
  route_table_ids = { for az, table in data.aws_route_table.nodes : az => table.id }
  # The EKS cluster security group, as on the nodes' primary ENIs.
  pod_security_group_ids = [data.aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
  identity               = "pod_identity"
}
