# ipamd's AWS identity: the policy is docs/iam-policy.json itself (written for the aws
# partition; its ARNs follow the partition the provider runs in), on a role that EKS Pod
# Identity or IRSA hands to ipamd's service account.

data "aws_partition" "current" {}

locals {
  ipamd_policy = replace(file("${path.module}/../../../docs/iam-policy.json"), "arn:aws:", "arn:${data.aws_partition.current.partition}:")
}

resource "aws_iam_policy" "ipamd" {
  name        = "${var.cluster_name}-eniplan-ipamd"
  description = "eniplan ipamd: the EC2 calls of the node daemon (docs/iam-policy.json)."
  policy      = local.ipamd_policy
  tags        = var.tags
}

# EKS Pod Identity: the EKS Auth service assumes the role and tags the session with the pod's
# cluster, namespace and service account; the role accepts only ipamd's.
data "aws_iam_policy_document" "pod_identity" {
  count = var.identity == "pod_identity" ? 1 : 0

  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-name"
      values   = [var.cluster_name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [var.service_account.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [var.service_account.name]
    }
  }
}

# IRSA: the cluster's OIDC provider, for ipamd's service account only.
data "aws_iam_policy_document" "irsa" {
  count = var.identity == "irsa" ? 1 : 0

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${split(":oidc-provider/", var.oidc_provider_arn)[1]}:sub"
      values   = ["system:serviceaccount:${var.service_account.namespace}:${var.service_account.name}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${split(":oidc-provider/", var.oidc_provider_arn)[1]}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ipamd" {
  count = var.identity == "none" ? 0 : 1

  name               = "${var.cluster_name}-eniplan-ipamd"
  description        = "eniplan ipamd on ${var.cluster_name} (${var.identity})"
  assume_role_policy = var.identity == "irsa" ? data.aws_iam_policy_document.irsa[0].json : data.aws_iam_policy_document.pod_identity[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ipamd" {
  count = var.identity == "none" ? 0 : 1

  role       = aws_iam_role.ipamd[0].name
  policy_arn = aws_iam_policy.ipamd.arn
}

resource "aws_eks_pod_identity_association" "ipamd" {
  count = var.identity == "pod_identity" ? 1 : 0

  cluster_name    = var.cluster_name
  namespace       = var.service_account.namespace
  service_account = var.service_account.name
  role_arn        = aws_iam_role.ipamd[0].arn
  tags            = var.tags
}
