# One ENIConfig per availability zone, named after it: ipamd picks it with
# ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone (the CRD is deploy/crds/eniconfigs.yaml).

resource "kubernetes_manifest" "eniconfig" {
  for_each = var.create_eniconfigs ? local.pod_subnet_ids : {}

  manifest = {
    apiVersion = "crd.k8s.amazonaws.com/v1alpha1"
    kind       = "ENIConfig"
    metadata = {
      name = each.key
    }
    spec = {
      subnet         = each.value
      securityGroups = var.pod_security_group_ids
    }
  }
}
